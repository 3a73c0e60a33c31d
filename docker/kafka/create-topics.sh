#!/bin/sh
# create-topics.sh - the compose stack's one-shot topic job: waits until the
# broker at $BOOTSTRAP answers (no healthcheck involved), then creates each
# NAME:PARTITIONS[:KEY=VALUE,...] of $TOPICS (the topic configs, e.g.
# cleanup.policy=compact) if it does not exist yet, and exits 0.
set -eu
bin=/opt/kafka/bin
tries=0
until "$bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -le 300 ] || { echo "create-topics: no answer from $BOOTSTRAP" >&2; exit 1; }
  echo "create-topics: waiting for $BOOTSTRAP"
  sleep 2
done
for t in $TOPICS; do
  name=${t%%:*} rest=${t#*:}
  parts=${rest%%:*} configs=
  [ "$rest" = "$parts" ] || configs=${rest#*:}
  set -- --topic "$name" --partitions "$parts" --replication-factor 1
  old_ifs=$IFS IFS=,
  for c in $configs; do set -- "$@" --config "$c"; done
  IFS=$old_ifs
  "$bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists "$@"
done
"$bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --list
echo "create-topics: done"
