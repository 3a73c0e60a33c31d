#!/bin/sh
# produce.sh - runs ai-finops-loadgen with the given arguments; while the
# broker says its topic does not exist yet (the topic job has not finished),
# waits and tries again. That check comes before the first event is sent,
# so a retry never produces anything twice. The totals go to stdout.
tries=0
while :; do
  # stderr captured, stdout (the totals) passed through
  { err=$(/usr/local/bin/ai-finops-loadgen "$@" 2>&1 1>&3); rc=$?; } 3>&1
  case "$rc:$err" in
    1:*"does not exist"*)
      tries=$((tries + 1))
      if [ "$tries" -gt 300 ]; then
        echo "$err" >&2
        exit 1
      fi
      echo "produce: topic not there yet, retrying" >&2
      sleep 2
      ;;
    *)
      [ -z "$err" ] || echo "$err" >&2
      exit "$rc"
      ;;
  esac
done
