#!/usr/bin/env python3
"""Deterministic generator of AI cost events (contract v1) with exact totals.

Writes JSONL events to --output and, with --totals, the totals the exporter
must report after ingesting them, computed independently with integer
arithmetic (Python ints: nano-dollars, tokens, GPU nano-seconds).

Events are realistic: ~30 teams and ~100 projects with a Zipf-like skew, LLM
API calls (openai / anthropic / google / together) priced per token, and GPU
jobs (p4d, p5, g5, g6e, a3, ...) priced per instance-hour. Every cost_usd is
written from integer nanos as an exact decimal string, never through a float.

The semantics follow docs/events.md (contract v1): null is the same as a
missing field, token counts above 2^53 are invalid_tokens, duplicate known
fields are duplicate_field, timestamps must lie in 2000..now + 1 day, etc.

With --bad-ratio > 0, a fraction of the lines are defective, each with
exactly one defect whose reject reason is unambiguous, cycling through every
reject reason of the contract, plus boundary cases that must be ACCEPTED
(a 65536-byte line, nesting depth 16, a 128-byte label, cost 1000000, ...).
Those boundary events use team "qa-edge-cases" and a project naming the case,
so a mismatch on such a series points at the exact boundary that failed.
Blank lines (empty or only spaces/tabs/CR) are sprinkled in too: not events.

The output is bytes, not necessarily valid UTF-8 (some defects are raw
invalid UTF-8 in label values). Same arguments -> byte-identical output.

`--verify FILE` recomputes a file's totals with an independent oracle
(classify(): Python's json module plus the contract's rules) and compares
them with --totals, which cross-checks the generator's own bookkeeping.

Usage:
  gen_events.py --verify events.jsonl --totals totals.json
  gen_events.py --seed 42 --count 1000000 --bad-ratio 0.005 \
      --unpriced-ratio 0.002 --output events.jsonl --totals totals.json
"""

import argparse
import bisect
import json
import random
import sys
import time
from json.encoder import encode_basestring as _enc_utf8
from json.encoder import encode_basestring_ascii as _enc_ascii

NANO = 1_000_000_000
MAX_COST_NANOS = 1_000_000 * NANO
MAX_LINE_BYTES = 65536
MAX_DEPTH = 16
MAX_LABEL_BYTES = 128
UNATTRIBUTED = "unattributed"
UNKNOWN = "unknown"
EDGE_TEAM = "qa-edge-cases"

REASONS = (
    "invalid_json", "not_object", "trailing_data", "too_large", "too_deep",
    "wrong_type", "duplicate_field", "invalid_cost", "invalid_tokens", "invalid_usage",
    "invalid_label", "invalid_timestamp", "unpriced",
)
MAX_TOKENS = 1_000_000_000    # events.max_tokens' default: larger counts are invalid_tokens
MAX_GPU_COUNT = 1_000_000
MAX_DURATION_NANOS = 4_000_000 * 1_000_000_000
MAX_EPOCH = 4_102_444_800     # 2100-01-01T00:00:00Z
MIN_EPOCH = 946_684_800       # 2000-01-01T00:00:00Z: earlier timestamps are invalid_timestamp
MAX_FUTURE = 86_400           # events.max_future_seconds' default
OVERFLOW_LABEL = "__overflow__"  # reserved for the counter tables' overflow series
TOKEN_KINDS = ("input", "cached_input", "cache_write", "output")
TOKEN_FIELDS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")

# ---------------------------------------------------------------------------
# Catalogue: teams (Zipf rank = list order), their projects (Zipf within).
# The last entries carry nasty-but-valid label values to exercise escaping.
TEAMS = [
    ("ml-platform", ["training-infra", "inference-gateway", "eval-harness", "feature-store", "model-registry"]),
    ("llm-platform", ["prompt-gateway", "rag-service", "agent-runtime", "fine-tune-service", "guardrails"]),
    ("search-ranking", ["semantic-search", "learning-to-rank", "query-understanding", "spell-correct"]),
    ("recsys", ["home-feed", "two-tower-retrieval", "similar-items", "notifications-ranker"]),
    ("support-automation", ["reply-drafts", "ticket-router", "kb-summarizer", "voice-agent"]),
    ("nlp-research", ["pretraining-7b", "rlhf-experiments", "long-context-eval", "tokenizer-lab", "ja-研究"]),
    ("ads", ["ctr-prediction", "creative-gen", "bid-optimizer", "brand-safety"]),
    ("fraud", ["txn-scoring", "account-takeover", "chargeback-triage"]),
    ("growth", ["onboarding-copilot", "churn-prediction", "referral-gen"]),
    ("devex", ["code-review-bot", "test-generation", "docs-qa"]),
    ("vision", ["ocr-pipeline", "image-gen", "defect-detection"]),
    ("trust-safety", ["content-moderation", "spam-detection", "image-moderation"]),
    ("marketplace", ["listing-enrichment", "image-captioning", "price-suggest"]),
    ("data-eng", ["sql-copilot", "pii-redaction", "schema-inference"]),
    ("payments", ["invoice-parsing", "dispute-assistant"]),
    ("risk", ["kyc-docs", "sanctions-screening"]),
    ("voice", ["asr-finetune", "tts-service"]),
    ("customer-insights", ["review-mining", "survey-clustering"]),
    ("security", ["phishing-triage", "code-scanning"]),
    ("legal-ai", ["contract-review", "ediscovery"]),
    ("mobile", ["smart-compose", "on-device-distill"]),
    ("web", ["chat-widget", "site-search"]),
    ("pricing", ["demand-forecast", "dynamic-pricing"]),
    ("logistics", ["eta-model", "route-optimizer"]),
    ("maps", ["poi-extraction", "geocoder-llm"]),
    ("finance-analytics", ["earnings-summaries", "forecast-narratives"]),
    ("sre", ["alert-dedup", "postmortem-writer"]),
    ("hr-tools", ["resume-screening", "C:\\models\\v2"]),
    ("équipe-données", ["analyse-qualité", 'tableau de bord "exec"']),
    ("🚀-launch", ["agents-🤖", "multi\nline-project"]),
]

# provider -> (default source, alternative source, [(model, price nanos per token:
#   input, cached_input, cache_write, output)]); price per token in nanos is
#   the list price in USD per million tokens times 1000.
PROVIDERS = {
    "openai": ("openai-api", "azure-openai", [
        ("gpt-4o", 2500, 1250, 0, 10000),
        ("gpt-4o-mini", 150, 75, 0, 600),
        ("gpt-4.1", 2000, 500, 0, 8000),
        ("gpt-4.1-mini", 400, 100, 0, 1600),
        ("o3", 2000, 500, 0, 8000),
        ("o4-mini", 1100, 275, 0, 4400),
        ("text-embedding-3-small", 20, 0, 0, 0),
    ]),
    "anthropic": ("anthropic-api", "aws-bedrock", [
        ("claude-sonnet-4-5", 3000, 300, 3750, 15000),
        ("claude-haiku-4-5", 1000, 100, 1250, 5000),
        ("claude-opus-4-1", 15000, 1500, 18750, 75000),
        ("claude-3-5-haiku", 800, 80, 1000, 4000),
    ]),
    "google": ("vertex-ai", "gemini-api", [
        ("gemini-2.5-pro", 1250, 310, 0, 10000),
        ("gemini-2.5-flash", 300, 75, 0, 2500),
        ("gemini-2.0-flash-lite", 75, 19, 0, 300),
    ]),
    "together": ("together-api", "together-api", [
        ("meta-llama/Llama-3.3-70B-Instruct-Turbo", 880, 0, 0, 880),
        ("deepseek-ai/DeepSeek-V3", 1250, 0, 0, 1250),
        ("Qwen/Qwen2.5-72B-Instruct-Turbo", 1200, 0, 0, 1200),
    ]),
}
PROVIDER_NAMES = ("openai", "anthropic", "google", "together")
PROVIDER_WEIGHTS = (0.42, 0.33, 0.17, 0.08)

# instance type -> (on-demand USD/hour in nanos, GPUs, gpu_type)
INSTANCES = [
    ("p4d.24xlarge", 32_772_600_000, 8, "nvidia-a100-40gb"),
    ("p5.48xlarge", 98_320_000_000, 8, "nvidia-h100-80gb"),
    ("g5.xlarge", 1_006_000_000, 1, "nvidia-a10g"),
    ("g5.12xlarge", 5_672_000_000, 4, "nvidia-a10g"),
    ("g6e.12xlarge", 10_493_000_000, 4, "nvidia-l40s"),
    ("a3-highgpu-8g", 88_250_000_000, 8, "nvidia-h100-80gb"),
    ("a2-highgpu-1g", 3_673_000_000, 1, "nvidia-a100-40gb"),
    ("Standard_ND96isr_H100_v5", 98_320_000_000, 8, "nvidia-h100-80gb"),
]
SELF_HOSTED_MODELS = ("llama-3.1-8b-instruct", "llama-3.1-70b-instruct", "mixtral-8x7b-instruct")
ENVS = ("prod", "prod", "prod", "staging", "dev")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "europe-west4", "asia-northeast1")

BASE_EPOCH = 1_761_955_200  # 2025-11-01T00:00:00Z


def _cum(weights):
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


def _zipf_cum(n, s):
    return _cum([1.0 / (r ** s) for r in range(1, n + 1)])


def _pick(rng, cum, items):
    return items[bisect.bisect_right(cum, rng.random() * cum[-1])]


def fmt_nanos(n):
    """Canonical exact decimal of n/1e9: '5', '0.5', '123.000000001'."""
    if n < 0:
        raise ValueError("negative")
    i, f = divmod(n, NANO)
    if f == 0:
        return str(i)
    return "%d.%s" % (i, ("%09d" % f).rstrip("0"))


def fmt_millis(ms):
    i, f = divmod(ms, 1000)
    if f == 0:
        return str(i)
    return "%d.%s" % (i, ("%03d" % f).rstrip("0"))


def _fmt_cost_variant(rng, nanos):
    """The same exact value in one of several valid JSON number spellings."""
    r = rng.random()
    if r < 0.90:
        return fmt_nanos(nanos)
    i, f = divmod(nanos, NANO)
    if r < 0.95:
        return "%d.%09d" % (i, f)  # padded: trailing zeros kept
    if r < 0.975:
        return "%de-9" % nanos  # integer mantissa, exponent
    if r < 0.99:  # one redundant trailing zero
        s = fmt_nanos(nanos)
        if "." not in s:
            return s + ".0"
        return s + "0" if len(s) - s.index(".") - 1 < 9 else s
    # d.ddddE+k scientific notation, exact: digits of nanos with exponent
    if nanos == 0:
        return "0E0"
    d = str(nanos)
    mant = d[0] + ("." + d[1:].rstrip("0") if d[1:].rstrip("0") else "")
    return "%sE%+d" % (mant, len(d) - 1 - 9)


def _rfc3339(rng, t):
    tm = time.gmtime(t)
    r = rng.random()
    if r < 0.70:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", tm)
    if r < 0.85:
        return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + ".%03dZ" % rng.randrange(1000)
    if r < 0.92:
        return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + ".%06dZ" % rng.randrange(1000000)
    off_h = rng.choice((-8, -5, 1, 2, 5, 9))
    tl = time.gmtime(t + off_h * 3600)
    sign = "+" if off_h >= 0 else "-"
    return time.strftime("%Y-%m-%dT%H:%M:%S", tl) + "%s%02d:00" % (sign, abs(off_h))


class Totals:
    """Expected counter values, all Python ints."""

    def __init__(self):
        self.accepted = 0
        self.rejected = {}
        self.cost = {}    # (team, project, source) -> nanos
        self.tokens = {}  # (team, project, provider, model, kind) -> tokens
        self.gpu = {}     # (team, project, instance_type, gpu_type) -> gpu nanoseconds
        self.blank_lines = 0
        self.variants = {}

    def reject(self, reason):
        assert reason in REASONS, reason
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def to_json(self):
        def series(d, names):
            return [{"labels": dict(zip(names, k)), "value": v} for k, v in sorted(d.items())]

        nrej = sum(self.rejected.values())
        return {
            "events": {"accepted": self.accepted, "rejected": nrej},
            "lines": self.accepted + nrej,
            "blank_lines": self.blank_lines,
            "rejected": dict(sorted(self.rejected.items())),
            "cost_nanos": series(self.cost, ("team", "project", "source")),
            "tokens": series(self.tokens, ("team", "project", "provider", "model", "kind")),
            "gpu_nanoseconds": series(self.gpu, ("team", "project", "instance_type", "gpu_type")),
            "variants": dict(sorted(self.variants.items())),
        }


class Event:
    """A valid event under construction: ordered JSON fragments plus the
    semantic values needed to account for it."""

    __slots__ = ("frags", "team", "project", "source", "cost", "provider", "model",
                 "tokens", "instance_type", "gpu_type", "gpu_count", "duration_ns")

    def __init__(self):
        self.frags = []
        self.team = self.project = self.source = None
        self.cost = None
        self.provider = self.model = None
        self.tokens = None
        self.instance_type = self.gpu_type = None
        self.gpu_count = None
        self.duration_ns = None

    def line(self):
        return "{" + ",".join(self.frags) + "}"

    def set(self, key, raw_json):
        """Replace (or append) a field's raw JSON text."""
        prefix = '"%s":' % key
        for i, f in enumerate(self.frags):
            if f.startswith(prefix):
                self.frags[i] = prefix + raw_json
                return
        self.frags.append(prefix + raw_json)

    def drop(self, key):
        prefix = '"%s":' % key
        self.frags = [f for f in self.frags if not f.startswith(prefix)]


# Usage no price table knows: an event without cost_usd stays unpriced even
# once the daemon prices tokens / GPU time from data/prices/*.yaml.
UNPRICEABLE_PROVIDER = "acme-labs"
UNPRICEABLE_MODEL = "acme-internal-llm-v3"
UNPRICEABLE_INSTANCE = "onprem-dgx-h100-rack7"


def _unpriceable(ev):
    ev.drop("cost_usd")
    ev.set("provider", '"%s"' % UNPRICEABLE_PROVIDER)
    ev.set("model", '"%s"' % UNPRICEABLE_MODEL)
    if any(f.startswith(('"gpu_count"', '"instance_type"')) for f in ev.frags):
        ev.set("instance_type", '"%s"' % UNPRICEABLE_INSTANCE)


def account(tot, ev):
    """Adds an accepted event to the expected totals (contract v1 semantics)."""
    tot.accepted += 1
    team = ev.team if ev.team else UNATTRIBUTED
    project = ev.project if ev.project else UNATTRIBUTED
    source = ev.source if ev.source else UNKNOWN
    k = (team, project, source)
    tot.cost[k] = tot.cost.get(k, 0) + ev.cost
    if ev.tokens:
        provider = ev.provider if ev.provider is not None else UNKNOWN
        model = ev.model if ev.model is not None else UNKNOWN
        for kind, n in zip(TOKEN_KINDS, ev.tokens):
            if n:  # None (absent) or 0 touch nothing
                tk = (team, project, provider, model, kind)
                tot.tokens[tk] = tot.tokens.get(tk, 0) + n
    if ev.gpu_count and ev.duration_ns:
        gk = (team, project,
              ev.instance_type if ev.instance_type is not None else UNKNOWN,
              ev.gpu_type if ev.gpu_type is not None else UNKNOWN)
        tot.gpu[gk] = tot.gpu.get(gk, 0) + ev.gpu_count * ev.duration_ns


class Generator:
    def __init__(self, seed, bad_ratio=0.0, unpriced_ratio=0.0):
        self.rng = random.Random(seed)
        self.bad_ratio = bad_ratio
        self.unpriced_ratio = unpriced_ratio
        self.tot = Totals()
        self.t = BASE_EPOCH
        self.nbad = 0
        # Structure (which project uses which models / GPUs) is fixed,
        # independent of the seed, so series sets are stable across seeds.
        srng = random.Random(20251123)
        self.team_cum = _zipf_cum(len(TEAMS), 1.07)
        self.teams = []
        for name, projects in TEAMS:
            plist = []
            for p in projects:
                gpu_share = srng.choice((0.0, 0.02, 0.05, 0.1, 0.3, 0.6))
                if name in ("ml-platform", "nlp-research", "vision", "voice"):
                    gpu_share = max(gpu_share, 0.4)
                models = []
                for _ in range(srng.randint(1, 3)):
                    prov = _pick(srng, _cum(PROVIDER_WEIGHTS), PROVIDER_NAMES)
                    models.append((prov, srng.choice(PROVIDERS[prov][2])))
                models = sorted(set(models), key=lambda m: (m[0], m[1][0]))
                insts = sorted(set(srng.choice(INSTANCES) for _ in range(srng.randint(1, 2))))
                plist.append((p, gpu_share, models, _zipf_cum(len(models), 1.5), insts))
            self.teams.append((name, plist, _zipf_cum(len(plist), 1.2)))
        self.ascii_teams = [t for t in self.teams if t[0].isascii() and t[0].isprintable()]
        self.ascii_team_cum = self.team_cum[:len(self.ascii_teams)]
        self.variants = [v for v in dir(type(self)) if v.startswith(("bad_", "edge_"))]
        self.variants.sort()
        # Interleave rejects and edges so small runs still cover each reason.
        srng.shuffle(self.variants)

    # -- helpers -----------------------------------------------------------
    def _enc(self, s):
        # Mostly raw UTF-8, sometimes \\u-escaped (incl. surrogate pairs).
        return _enc_ascii(s) if self.rng.random() < 0.15 else _enc_utf8(s)

    def _ts(self):
        rng = self.rng
        self.t += rng.randrange(0, 5)
        r = rng.random()
        if r < 0.70:
            return _enc_ascii(_rfc3339(rng, self.t))
        if r < 0.92:
            return str(self.t)
        return None

    # -- valid events --------------------------------------------------------
    def valid_event(self, *, nasty_ok=True):
        rng = self.rng
        ev = Event()
        f = ev.frags
        team, plist, pcum = _pick(rng, self.team_cum, self.teams)
        project, gpu_share, models, mcum, insts = _pick(rng, pcum, plist)
        if rng.random() < 0.25:
            f.append('"event_id":"evt-%016x"' % rng.getrandbits(64))
        ts = self._ts()
        if ts is not None:
            f.append('"timestamp":' + ts)
        # attribution, with some missing / empty values
        r = rng.random()
        if r < 0.010:
            ev.team = None
        elif r < 0.015:
            ev.team = ""
            f.append('"team":""')
        else:
            ev.team = team
            f.append('"team":' + self._enc(team))
        r = rng.random()
        if r < 0.010:
            ev.project = None
        elif r < 0.015:
            ev.project = ""
            f.append('"project":""')
        else:
            ev.project = project
            f.append('"project":' + self._enc(project))
        if rng.random() < gpu_share:
            self._gpu_job(ev, insts)
        else:
            self._llm_call(ev, models, mcum)
        r = rng.random()
        if r < 0.005:
            ev.source = None
        elif r < 0.008:
            ev.source = ""
            f.append('"source":""')
        else:
            f.append('"source":' + _enc_ascii(ev.source))
        if rng.random() < 0.2:
            f.append('"labels":{"env":"%s","region":"%s"}' % (rng.choice(ENVS), rng.choice(REGIONS)))
        if rng.random() < 0.02:  # unknown fields are ignored, even nested ones
            f.append('"trace":{"span_id":"%08x","tags":[1,2.5,null,true,{"k":"v"}]}' % rng.getrandbits(32))
        r = rng.random()
        if r < 0.002:
            ev.cost = 0
        elif r < 0.0025:
            ev.cost = rng.randrange(1, 10)  # a few nanos
        f.append('"cost_usd":' + _fmt_cost_variant(rng, ev.cost))
        if rng.random() < 0.1:
            rng.shuffle(f)  # key order carries no meaning
        return ev

    def _llm_call(self, ev, models, mcum):
        rng = self.rng
        f = ev.frags
        prov, (model, p_in, p_cached, p_write, p_out) = _pick(rng, mcum, models)
        dsrc, asrc = PROVIDERS[prov][0], PROVIDERS[prov][1]
        ev.source = dsrc if rng.random() < 0.8 else asrc
        r = rng.random()
        if r < 0.005:
            ev.provider = None
        else:
            ev.provider = prov
            f.append('"provider":"%s"' % prov)
        if r > 0.995:
            ev.model = None
        else:
            ev.model = model
            f.append('"model":' + _enc_ascii(model))
        if rng.random() < 0.3:
            f.append('"request_id":"req_%012x"' % rng.getrandbits(48))
        inp = int(50 * (400.0 ** rng.random()))
        out = 0 if p_out == 0 else int(10 * (400.0 ** rng.random()))
        cached = write = None
        if p_cached and rng.random() < 0.3:
            cached = int(inp * rng.random() * 3)
        elif rng.random() < 0.05:
            cached = 0
        if p_write and rng.random() < 0.15:
            write = rng.randrange(100, 20001)
        f.append('"input_tokens":%d' % inp)
        if cached is not None:
            f.append('"cached_input_tokens":%d' % cached)
        if write is not None:
            f.append('"cache_write_tokens":%d' % write)
        if p_out or rng.random() < 0.5:
            f.append('"output_tokens":%d' % out)
        ev.tokens = (inp, cached, write, out)
        cost = inp * p_in + (cached or 0) * p_cached + (write or 0) * p_write + out * p_out
        if rng.random() < 0.1:
            cost //= 2  # batch API discount
        ev.cost = cost
        if rng.random() < 0.3:  # request latency: a duration without GPUs
            f.append('"duration_seconds":' + fmt_millis(rng.randrange(80, 60000)))

    def _gpu_job(self, ev, insts):
        rng = self.rng
        f = ev.frags
        itype, hourly, ngpu, gtype = rng.choice(insts)
        training = rng.random() < 0.4
        if training:
            ev.source = "gpu-training"
            ms = rng.randrange(600_000, 86_400_001)
            count = ngpu
        else:
            ev.source = rng.choice(("gpu-inference", "gpu-inference", "gpu-batch", "notebooks"))
            ms = rng.randrange(50, 30_001) if ev.source == "gpu-inference" else rng.randrange(1_000, 7_200_001)
            count = rng.randint(1, ngpu)
        r = rng.random()
        if r < 0.01:
            ev.instance_type = None
        else:
            ev.instance_type = itype
            f.append('"instance_type":' + _enc_ascii(itype))
        if r > 0.99:
            ev.gpu_type = None
        else:
            ev.gpu_type = gtype
            f.append('"gpu_type":"%s"' % gtype)
        r = rng.random()
        if r < 0.005:
            count = 0
        elif r < 0.01:
            ms = 0
        ev.gpu_count = count
        ev.duration_ns = ms * 1_000_000
        f.append('"gpu_count":%d' % count)
        f.append('"duration_seconds":' + (fmt_millis(ms) if rng.random() < 0.9 else "%d.%03d" % divmod(ms, 1000)))
        ev.cost = hourly * max(count, 1) * ms // (ngpu * 3_600_000)
        if ev.source == "gpu-inference" and rng.random() < 0.5:
            # self-hosted model serving: tokens too
            ev.provider = "self-hosted"
            ev.model = rng.choice(SELF_HOSTED_MODELS)
            inp = int(50 * (400.0 ** rng.random()))
            out = int(10 * (400.0 ** rng.random()))
            ev.tokens = (inp, None, None, out)
            f.append('"provider":"self-hosted","model":"%s","input_tokens":%d,"output_tokens":%d'
                     % (ev.model, inp, out))

    # -- defective events: exactly one defect each ------------------------------
    # Each bad_* returns (line, reason); each edge_* returns (line, Event) for
    # an event that must be accepted. Lines are str; raw invalid UTF-8 bytes
    # are carried as surrogate escapes (encoded with errors="surrogateescape").

    def _base(self):
        """A plain valid LLM event with a cost, built to be mutated."""
        rng = self.rng
        ev = Event()
        team, plist, pcum = _pick(rng, self.ascii_team_cum, self.ascii_teams)
        project = plist[0][0]
        prov, (model, p_in, _, _, p_out) = "openai", PROVIDERS["openai"][2][0]
        ev.team, ev.project, ev.source, ev.provider, ev.model = team, project, "openai-api", prov, model
        inp, out = rng.randrange(50, 20001), rng.randrange(10, 4001)
        ev.tokens = (inp, None, None, out)
        ev.cost = inp * p_in + out * p_out
        ev.frags = ['"team":"%s"' % team, '"project":"%s"' % project, '"source":"openai-api"',
                    '"provider":"openai"', '"model":"gpt-4o"', '"input_tokens":%d' % inp,
                    '"output_tokens":%d' % out, '"cost_usd":' + fmt_nanos(ev.cost)]
        return ev

    def _gpu_base(self):
        ev = self._base()
        ev.frags = [f for f in ev.frags if not f.startswith(('"input_tokens"', '"output_tokens"', '"provider"', '"model"'))]
        ev.tokens = None
        ev.provider = ev.model = None
        ev.source = "gpu-training"
        ev.set("source", '"gpu-training"')
        ev.instance_type, ev.gpu_type, ev.gpu_count, ev.duration_ns = "p5.48xlarge", "nvidia-h100-80gb", 8, 3600 * NANO
        ev.frags += ['"instance_type":"p5.48xlarge"', '"gpu_type":"nvidia-h100-80gb"',
                     '"gpu_count":8', '"duration_seconds":3600']
        ev.cost = 98_320_000_000
        ev.set("cost_usd", "98.32")
        return ev

    def _edge(self, name):
        ev = self._base()
        ev.team, ev.project = EDGE_TEAM, name
        ev.set("team", '"%s"' % EDGE_TEAM)
        ev.set("project", _enc_ascii(name))
        return ev

    # invalid_json
    def bad_json_truncated(self):
        return self._base().line()[:-1], "invalid_json"

    def bad_json_unquoted_key(self):
        return self._base().line().replace('"team":', "team:", 1), "invalid_json"

    def bad_json_trailing_comma(self):
        return self._base().line()[:-1] + ",}", "invalid_json"

    def bad_json_double_comma(self):
        return self._base().line().replace(",", ",,", 1), "invalid_json"

    def bad_json_nan(self):
        ev = self._base()
        ev.set("cost_usd", "NaN")
        return ev.line(), "invalid_json"

    def bad_json_garbage(self):
        return "this is not json", "invalid_json"

    def bad_json_unterminated_string(self):
        return '{"team":"ads', "invalid_json"

    # not_object
    def bad_not_object_array(self):
        return "[1,2]", "not_object"

    def bad_not_object_number(self):
        return "42", "not_object"

    def bad_not_object_string(self):
        return '"cost_usd"', "not_object"

    def bad_not_object_null(self):
        return "null", "not_object"

    def bad_not_object_array_of_event(self):
        return "[" + self._base().line() + "]", "not_object"

    # trailing_data
    def bad_trailing_word(self):
        return self._base().line() + " x", "trailing_data"

    def bad_trailing_object(self):
        return self._base().line() + '{"a":1}', "trailing_data"

    def bad_trailing_bracket(self):
        return self._base().line() + "]", "trailing_data"

    # too_large
    def _sized(self, ev, size):
        ev.frags.append('"note":""')
        pad = size - len(ev.line().encode())
        assert pad >= 0
        ev.frags[-1] = '"note":"%s"' % ("x" * pad)
        line = ev.line()
        assert len(line.encode()) == size
        return line

    def bad_too_large_by_one(self):
        return self._sized(self._base(), MAX_LINE_BYTES + 1), "too_large"

    def bad_too_large_200k(self):
        return self._sized(self._base(), 200_000), "too_large"

    def edge_size_65536(self):
        ev = self._edge("edge-size-65536")
        return self._sized(ev, MAX_LINE_BYTES), ev

    # too_deep (the top-level object is depth 1)
    def _nested(self, ev, depth):
        ev.frags.append('"extra":' + "[" * (depth - 1) + "1" + "]" * (depth - 1))
        return ev.line()

    def bad_too_deep_17(self):
        return self._nested(self._base(), MAX_DEPTH + 1), "too_deep"

    def bad_too_deep_20(self):
        return self._nested(self._base(), 20), "too_deep"

    def bad_too_deep_objects(self):
        ev = self._base()
        ev.frags.append('"extra":' + '{"a":' * 30 + "1" + "}" * 30)
        return ev.line(), "too_deep"

    def edge_depth_16(self):
        ev = self._edge("edge-depth-16")
        return self._nested(ev, MAX_DEPTH), ev

    # wrong_type
    def _wrong(self, key, raw):
        ev = self._base()
        ev.set(key, raw)
        return ev.line(), "wrong_type"

    def bad_wrong_type_cost_string(self):
        return self._wrong("cost_usd", '"12"')

    def bad_wrong_type_team_number(self):
        return self._wrong("team", "5")

    def bad_wrong_type_project_bool(self):
        return self._wrong("project", "true")

    def bad_wrong_type_source_object(self):
        return self._wrong("source", '{"name":"openai-api"}')

    def bad_wrong_type_model_array(self):
        return self._wrong("model", '["gpt-4o"]')

    def bad_wrong_type_tokens_string(self):
        return self._wrong("input_tokens", '"100"')

    def bad_wrong_type_labels_string(self):
        return self._wrong("labels", '"env=prod"')

    def bad_wrong_type_gpu_count_string(self):
        ev = self._gpu_base()
        ev.set("gpu_count", '"8"')
        return ev.line(), "wrong_type"

    def bad_wrong_type_duration_string(self):
        ev = self._gpu_base()
        ev.set("duration_seconds", '"3600"')
        return ev.line(), "wrong_type"

    # invalid_cost
    def _cost(self, raw):
        ev = self._base()
        ev.set("cost_usd", raw)
        return ev.line(), "invalid_cost"

    def bad_cost_negative(self):
        return self._cost("-1")

    def bad_cost_negative_nano(self):
        return self._cost("-0.000000001")

    def bad_cost_inf(self):
        return self._cost("1e400")

    def bad_cost_too_big(self):
        return self._cost("2000000")

    def bad_cost_over_max_by_nano(self):
        return self._cost("1000000.000000001")

    def edge_cost_max(self):
        ev = self._edge("edge-cost-max")
        ev.cost = MAX_COST_NANOS
        ev.set("cost_usd", self.rng.choice(("1000000", "1000000.000000000", "1e6", "1E+6")))
        return ev.line(), ev

    def edge_cost_max_minus_nano(self):
        ev = self._edge("edge-cost-max-minus-nano")
        ev.cost = MAX_COST_NANOS - 1
        ev.set("cost_usd", "999999.999999999")
        return ev.line(), ev

    def edge_cost_min(self):
        ev = self._edge("edge-cost-min")
        ev.cost = 1
        ev.set("cost_usd", self.rng.choice(("0.000000001", "1e-9", "1E-9", "0.0000000010")))
        return ev.line(), ev

    def edge_cost_zero(self):
        # The only events of this series cost 0: whether a zero-valued
        # series is exposed is not specified; the replay test tolerates both.
        ev = self._edge("edge-cost-zero")
        ev.cost = 0
        ev.set("cost_usd", self.rng.choice(("0", "0.0", "0e0", "0.000000000")))
        return ev.line(), ev

    # invalid_tokens
    def _tok(self, key, raw):
        ev = self._base()
        ev.set(key, raw)
        return ev.line(), "invalid_tokens"

    def bad_tokens_fraction(self):
        return self._tok("input_tokens", "1.5")

    def bad_tokens_negative(self):
        return self._tok("input_tokens", "-3")

    def bad_tokens_output_negative(self):
        return self._tok("output_tokens", "-1")

    def bad_tokens_cached_fraction(self):
        return self._tok("cached_input_tokens", "2.5")

    def bad_tokens_cache_write_negative(self):
        return self._tok("cache_write_tokens", "-10")

    def edge_tokens_large(self):
        # events.max_tokens (default 10^9): the largest count accepted
        ev = self._edge("edge-tokens-large")
        inp, out = 999_999_999, MAX_TOKENS
        if self.tot.variants.get("edge_tokens_large", 0) > 500:
            out = 1  # keep the sum far below 2^63 on huge runs
        ev.tokens = (inp, None, None, out)
        ev.set("input_tokens", str(inp))
        ev.set("output_tokens", str(out))
        return ev.line(), ev

    def bad_tokens_above_2p53_by_one(self):
        # 2^53 + 1 is not a double: a parser going through double sees 2^53
        return self._tok("output_tokens", "9007199254740993")

    def bad_tokens_above_2p53(self):
        return self._tok("input_tokens", "9007199254740994")

    def bad_tokens_above_cap_by_one(self):
        return self._tok("output_tokens", str(MAX_TOKENS + 1))

    def edge_tokens_zero(self):
        # present but 0: touches no token series
        ev = self._edge("edge-tokens-zero")
        ev.tokens = (0, 0, 0, 0)
        for k in TOKEN_FIELDS:
            ev.set(k, "0")
        return ev.line(), ev

    # invalid_usage
    def _usage(self, key, raw):
        ev = self._gpu_base()
        ev.set(key, raw)
        return ev.line(), "invalid_usage"

    def bad_usage_gpu_count_negative(self):
        return self._usage("gpu_count", "-1")

    def bad_usage_gpu_count_fraction(self):
        return self._usage("gpu_count", "1.5")

    def bad_usage_duration_negative(self):
        return self._usage("duration_seconds", "-5")

    def bad_usage_duration_negative_small(self):
        return self._usage("duration_seconds", "-0.001")

    def edge_gpu_microsecond(self):
        # GPU-seconds are counted in micro-GPU-seconds (docs/events.md)
        ev = self._gpu_base()
        ev.team, ev.project = EDGE_TEAM, "edge-gpu-microsecond"
        ev.set("team", '"%s"' % EDGE_TEAM)
        ev.set("project", '"edge-gpu-microsecond"')
        ev.gpu_count, ev.duration_ns = 3, 1000
        ev.set("gpu_count", "3")
        ev.set("duration_seconds", "0.000001")
        return ev.line(), ev

    def edge_gpu_zero_count(self):
        ev = self._gpu_base()
        ev.team, ev.project = EDGE_TEAM, "edge-gpu-zero-count"
        ev.set("team", '"%s"' % EDGE_TEAM)
        ev.set("project", '"edge-gpu-zero-count"')
        ev.gpu_count = 0
        ev.set("gpu_count", "0")
        return ev.line(), ev

    # invalid_label
    def _label(self, key, value_json):
        ev = self._base() if key not in ("instance_type", "gpu_type") else self._gpu_base()
        ev.set(key, value_json)
        return ev.line(), "invalid_label"

    def bad_label_invalid_utf8_ff(self):
        return self._label("team", '"ml-\udcff\udcfe"')

    def bad_label_invalid_utf8_overlong(self):
        return self._label("project", '"over\udcc0\udcaflong"')

    def bad_label_invalid_utf8_truncated(self):
        return self._label("source", '"caf\udcc3"')

    def bad_label_invalid_utf8_surrogate(self):
        return self._label("model", '"gpt-\udced\udca0\udc80"')

    def bad_label_invalid_utf8_gpu_type(self):
        return self._label("gpu_type", '"h100-\udc80"')

    def bad_label_team_200(self):
        return self._label("team", '"%s"' % ("t" * 200))

    def bad_label_project_129(self):
        return self._label("project", '"%s"' % ("p" * 129))

    def bad_label_project_129_multibyte(self):
        return self._label("project", _enc_utf8("é" * 64 + "p"))  # 129 bytes

    def bad_label_provider_long(self):
        return self._label("provider", '"%s"' % ("openai" * 25))

    def bad_label_instance_type_long(self):
        return self._label("instance_type", '"%s"' % ("p5.48xlarge-" * 11))

    def edge_label_128(self):
        ev = self._edge("edge-label-128")
        model = "m" * 125 + "é" + "x"  # 128 bytes, 127 code points
        ev.model = model
        ev.set("model", _enc_utf8(model) if self.rng.random() < 0.5 else _enc_ascii(model))
        return ev.line(), ev

    def edge_label_nasty(self):
        ev = self._edge('edge-"nasty"\\label\n✓')
        ev.source = "src-\U0001F600-\t-end"
        ev.set("source", self._enc(ev.source))
        return ev.line(), ev

    # invalid_timestamp
    def _ts_bad(self, raw):
        ev = self._base()
        ev.set("timestamp", raw)
        return ev.line(), "invalid_timestamp"

    def bad_timestamp_word(self):
        return self._ts_bad('"yesterday"')

    def bad_timestamp_month_13(self):
        return self._ts_bad('"2025-13-01T00:00:00Z"')

    def bad_timestamp_hour_25(self):
        return self._ts_bad('"2025-11-23T25:00:00Z"')

    def bad_timestamp_no_offset(self):
        return self._ts_bad('"2025-11-23T10:00:00"')

    def bad_timestamp_feb_30(self):
        return self._ts_bad('"2025-02-30T12:00:00Z"')

    def edge_timestamp_forms(self):
        ev = self._edge("edge-timestamp-forms")
        ev.set("timestamp", self.rng.choice((
            '"2024-02-29T23:59:59Z"', '"2025-11-23T10:00:00.123456789Z"',
            '"2025-11-23T10:00:00+05:30"', '"2025-11-23T10:00:00-00:00"',
            "1763892000", "1763892000.5", "946684800")))
        return ev.line(), ev

    def bad_timestamp_negative_epoch(self):
        return self._ts_bad("-1")

    def bad_timestamp_epoch_millis(self):
        return self._ts_bad("1763892000000")

    # null is the same as a missing field
    def edge_null_fields(self):
        ev = self._edge("edge-null-fields")
        ev.team = None
        ev.set("team", "null")
        ev.model = None
        ev.set("model", "null")
        ev.frags += ['"timestamp":null', '"event_id":null', '"labels":null', '"gpu_count":null',
                     '"cached_input_tokens":null']
        return ev.line(), ev

    def bad_unpriced_cost_null(self):
        ev = self._base()
        _unpriceable(ev)
        ev.set("cost_usd", "null")
        return ev.line(), "unpriced"

    # duplicate_field
    def bad_duplicate_cost(self):
        ev = self._base()
        ev.frags.append('"cost_usd":1000')
        return ev.line(), "duplicate_field"

    def bad_duplicate_team(self):
        ev = self._base()
        ev.frags.insert(0, '"team":"ads"')
        return ev.line(), "duplicate_field"

    def edge_duplicate_unknown_field(self):
        # only known fields must be unique
        ev = self._edge("edge-duplicate-unknown-field")
        ev.frags += ['"note":"a"', '"note":"b"', '"labels":{"env":"prod","env":"dev"}']
        return ev.line(), ev

    # more invalid_json / invalid_cost / wrong_type / invalid_label / invalid_usage
    def bad_json_leading_zero(self):
        ev = self._base()
        ev.set("cost_usd", "01")
        return ev.line(), "invalid_json"

    def bad_json_trailing_dot(self):
        ev = self._base()
        ev.set("cost_usd", "1.")
        return ev.line(), "invalid_json"

    def bad_json_lone_high_surrogate(self):
        ev = self._base()
        ev.set("team", '"ml-\\ud800x"')
        return ev.line(), "invalid_json"

    def bad_json_lone_low_surrogate(self):
        ev = self._base()
        ev.set("project", '"p\\udc00"')
        return ev.line(), "invalid_json"

    def bad_cost_negative_zero(self):
        return self._cost(self.rng.choice(("-0", "-0.0")))

    def edge_cost_ten_digits(self):
        # more than 9 fractional digits: rounds to the nearest nano-dollar
        # (the 10th digit is < 5, so rounding and truncation agree)
        ev = self._edge("edge-cost-ten-digits")
        ev.cost = 123_456_789
        ev.set("cost_usd", "0.1234567894")
        return ev.line(), ev

    def bad_wrong_type_label_value_number(self):
        return self._wrong("labels", '{"env":1}')

    def bad_label_overflow_reserved(self):
        return self._label("project", '"%s"' % OVERFLOW_LABEL)

    def bad_usage_gpu_count_too_big(self):
        return self._usage("gpu_count", "1000001")

    def bad_usage_duration_too_long(self):
        return self._usage("duration_seconds", "4000000.001")

    def edge_crlf_line(self):
        ev = self._edge("edge-crlf-line")
        return ev.line() + "\r", ev

    # unpriced
    def bad_unpriced_llm(self):
        ev = self._base()
        _unpriceable(ev)
        return ev.line(), "unpriced"

    def bad_unpriced_minimal(self):
        return '{"model":"%s","input_tokens":5}' % UNPRICEABLE_MODEL, "unpriced"

    def bad_unpriced_gpu(self):
        ev = self._gpu_base()
        _unpriceable(ev)
        return ev.line(), "unpriced"

    # -- driver --------------------------------------------------------------
    def next_line(self):
        """Returns one event line (str), accounting for it in the totals."""
        rng = self.rng
        tot = self.tot
        r = rng.random()
        if r < self.bad_ratio:
            name = self.variants[self.nbad % len(self.variants)]
            self.nbad += 1
            tot.variants[name] = tot.variants.get(name, 0) + 1
            line, what = getattr(self, name)()
            if isinstance(what, str):
                tot.reject(what)
            else:
                account(tot, what)
            return line
        ev = self.valid_event()
        if r < self.bad_ratio + self.unpriced_ratio:
            _unpriceable(ev)
            tot.reject("unpriced")
        else:
            account(tot, ev)
        return ev.line()

    def write(self, out, count, chunk=20000):
        """Writes `count` event lines (plus blank lines when bad_ratio > 0)
        to the binary file object `out`."""
        rng = self.rng
        blank_ratio = self.bad_ratio / 5
        buf = []
        for i in range(count):
            if blank_ratio and rng.random() < blank_ratio:
                buf.append(rng.choice(("", "", "", " ", "\t", "\r", "  \t ")))  # blank: not an event
                self.tot.blank_lines += 1
            buf.append(self.next_line())
            if len(buf) >= chunk:
                buf.append("")
                out.write("\n".join(buf).encode("utf-8", "surrogateescape"))
                buf = []
        if buf:
            buf.append("")
            out.write("\n".join(buf).encode("utf-8", "surrogateescape"))
        return self.tot


# ---------------------------------------------------------------------------
# Independent oracle: classifies each line of a file per the contract with
# Python's json module (a different code path from the generator's own
# bookkeeping) so `--verify` can cross-check the generator's totals.

_LABEL_FIELDS = ("team", "project", "source", "provider", "model", "instance_type", "gpu_type")
_STRING_FIELDS = _LABEL_FIELDS + ("event_id", "request_id")
_KNOWN = frozenset(_STRING_FIELDS + ("cost_usd", "gpu_count", "duration_seconds", "timestamp", "labels")
                   + TOKEN_FIELDS)
_RFC3339 = None


def _reject_constant(name):
    raise ValueError("not JSON: " + name)


def _depth(v):
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def _is_num(v):
    from decimal import Decimal
    return isinstance(v, (int, Decimal)) and not isinstance(v, bool)


def _rfc3339_epoch(s):
    import datetime
    m = _RFC3339.match(s)
    y, mo, d, h, mi, sec = (int(x) for x in m.groups()[:6])
    frac = m.group(7)
    off = m.group(8)
    t = datetime.datetime(y, mo, d, h, mi, min(sec, 59), tzinfo=datetime.timezone.utc).timestamp()
    t += sec - min(sec, 59) + (float("0" + frac[:4]) if frac else 0.0)
    if off != "Z":
        t -= (1 if off[0] == "+" else -1) * (int(off[1:3]) * 3600 + int(off[4:6]) * 60)
    return t


def _valid_rfc3339(s):
    import datetime
    import re
    global _RFC3339
    if _RFC3339 is None:
        _RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")
    m = _RFC3339.match(s)
    if not m:
        return False
    y, mo, d, h, mi, sec = (int(x) for x in m.groups()[:6])
    try:
        datetime.datetime(y, mo, d, h, mi, sec)
    except ValueError:
        return False
    off = m.group(8)
    return off == "Z" or (int(off[1:3]) < 24 and int(off[4:6]) < 60)


class _Obj(dict):
    dups = frozenset()


def _pairs(pairs):
    d = _Obj()
    dups = set()
    for k, v in pairs:
        if k in d:
            dups.add(k)
        d[k] = v
    if dups:
        d.dups = frozenset(dups)
    return d


_JSON_STRING_RE = None


def _lone_surrogate_escape(text):
    """True if a JSON string in text has a \\u escape of an unpaired surrogate."""
    import re
    global _JSON_STRING_RE
    if _JSON_STRING_RE is None:
        _JSON_STRING_RE = (re.compile(r'"(?:[^"\\]|\\.)*"', re.S), re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S))
    str_re, esc_re = _JSON_STRING_RE
    for m in str_re.finditer(text):
        pending_high = False
        pos = None
        for e in esc_re.finditer(m.group(0)):
            g = e.group(1)
            cp = int(g[1:], 16) if g[0] == "u" and len(g) == 5 else None
            adjacent = pos == e.start()
            if pending_high and not (adjacent and cp is not None and 0xDC00 <= cp <= 0xDFFF):
                return True
            if pending_high:
                pending_high = False
            elif cp is not None and 0xD800 <= cp <= 0xDBFF:
                pending_high = True
            elif cp is not None and 0xDC00 <= cp <= 0xDFFF:
                return True
            pos = e.end()
        if pending_high:
            return True
    return False


def classify(raw):
    """Returns (reason, None) for a rejected line or (None, Event) for an
    accepted one, per docs/events.md. `raw` is the line's bytes without the
    newline."""
    from decimal import ROUND_HALF_EVEN, Decimal
    if len(raw) > MAX_LINE_BYTES:
        return "too_large", None
    text = raw.decode("utf-8", "surrogateescape")
    dec = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=_pairs,
                           parse_int=lambda t: Decimal(t) if t.startswith("-0") else int(t))  # keep -0's sign
    try:
        start = len(text) - len(text.lstrip(" \t\r\n"))
        obj, end = dec.raw_decode(text, start)
    except (ValueError, RecursionError):
        return "invalid_json", None
    if text[end:].strip(" \t\r\n"):
        return "trailing_data", None
    if _depth(obj) > MAX_DEPTH:
        return "too_deep", None
    if _lone_surrogate_escape(text[start:end]):
        return "invalid_json", None
    if not isinstance(obj, dict):
        return "not_object", None
    if obj.dups & _KNOWN:
        return "duplicate_field", None
    obj = {k: v for k, v in obj.items() if v is not None or k not in _KNOWN}
    for k in _STRING_FIELDS:
        if k in obj and not isinstance(obj[k], str):
            return "wrong_type", None
    for k in ("cost_usd", "gpu_count", "duration_seconds") + TOKEN_FIELDS:
        if k in obj and not _is_num(obj[k]):
            return "wrong_type", None
    if "timestamp" in obj and not (isinstance(obj["timestamp"], str) or _is_num(obj["timestamp"])):
        return "wrong_type", None
    if "labels" in obj and not (isinstance(obj["labels"], dict)
                                and all(isinstance(v, str) for v in obj["labels"].values())):
        return "wrong_type", None
    if "cost_usd" in obj:
        c = Decimal(obj["cost_usd"])
        if not c.is_finite() or c.is_signed() or c > 1000000:
            return "invalid_cost", None
    for k in TOKEN_FIELDS:
        if k in obj and (obj[k] < 0 or Decimal(obj[k]) != int(obj[k]) or obj[k] > MAX_TOKENS):
            return "invalid_tokens", None
    if "gpu_count" in obj and (obj["gpu_count"] < 0 or Decimal(obj["gpu_count"]) != int(obj["gpu_count"])
                               or obj["gpu_count"] > MAX_GPU_COUNT):
        return "invalid_usage", None
    if "duration_seconds" in obj and (obj["duration_seconds"] < 0
                                      or obj["duration_seconds"] * NANO > MAX_DURATION_NANOS):
        return "invalid_usage", None
    for k in _LABEL_FIELDS:
        if k in obj:
            try:
                if len(obj[k].encode("utf-8")) > MAX_LABEL_BYTES or obj[k] == OVERFLOW_LABEL:
                    return "invalid_label", None
            except UnicodeEncodeError:  # raw invalid UTF-8
                return "invalid_label", None
    ts = obj.get("timestamp")
    if isinstance(ts, str) and not _valid_rfc3339(ts):
        return "invalid_timestamp", None
    if isinstance(ts, str):
        ts = _rfc3339_epoch(ts)
    if _is_num(ts) and not (MIN_EPOCH <= ts <= min(MAX_EPOCH, time.time() + MAX_FUTURE)):
        return "invalid_timestamp", None
    if "cost_usd" not in obj:
        return "unpriced", None
    ev = Event()
    ev.team, ev.project, ev.source = obj.get("team"), obj.get("project"), obj.get("source")
    ev.provider, ev.model = obj.get("provider"), obj.get("model")
    ev.instance_type, ev.gpu_type = obj.get("instance_type"), obj.get("gpu_type")
    ev.cost = int((Decimal(obj["cost_usd"]) * NANO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    ev.tokens = tuple(int(obj[k]) if k in obj else None for k in TOKEN_FIELDS)
    if "gpu_count" in obj and "duration_seconds" in obj:
        ev.gpu_count = int(obj["gpu_count"])
        d = Decimal(obj["duration_seconds"]) * NANO
        assert d == int(d)
        ev.duration_ns = int(d)
    return None, ev


def verify(path):
    """Recomputes the totals of an events file with the oracle."""
    tot = Totals()
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        raise AssertionError("file does not end with a newline")
    for raw in data.split(b"\n")[:-1]:
        if not raw.strip(b" \t\r"):
            tot.blank_lines += 1
            continue
        reason, ev = classify(raw)
        if reason:
            tot.reject(reason)
        else:
            account(tot, ev)
    return tot.to_json()


def generate(path, count, seed=1, bad_ratio=0.0, unpriced_ratio=0.0):
    """Writes events to `path`, returns the totals dict (see Totals.to_json)."""
    g = Generator(seed, bad_ratio, unpriced_ratio)
    with open(path, "wb") as out:
        g.write(out, count)
    return g.tot.to_json()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--bad-ratio", type=float, default=0.0)
    ap.add_argument("--unpriced-ratio", type=float, default=0.0)
    ap.add_argument("--output", default="-", help="JSONL output file ('-' for stdout)")
    ap.add_argument("--totals", help="write the expected totals as JSON here")
    ap.add_argument("--verify", metavar="FILE",
                    help="instead of generating, recompute FILE's totals with an independent "
                         "oracle and compare them with --totals (exit 1 on a difference)")
    args = ap.parse_args(argv)
    if args.verify:
        t0 = time.monotonic()
        got = verify(args.verify)
        if not args.totals:
            json.dump(got, sys.stdout, indent=1)
            return 0
        with open(args.totals) as f:
            want = json.load(f)
        want.pop("variants", None)
        got.pop("variants", None)
        bad = [k for k in want if want[k] != got.get(k)]
        for k in bad:
            print("MISMATCH in %s" % k, file=sys.stderr)
        print("verify: %s (%.1f s)" % ("OK" if not bad else "FAILED", time.monotonic() - t0), file=sys.stderr)
        return 1 if bad else 0
    if not (0 <= args.bad_ratio and 0 <= args.unpriced_ratio and args.bad_ratio + args.unpriced_ratio <= 1):
        ap.error("ratios must be >= 0 and sum to <= 1")
    t0 = time.monotonic()
    g = Generator(args.seed, args.bad_ratio, args.unpriced_ratio)
    if args.output == "-":
        g.write(sys.stdout.buffer, args.count)
        sys.stdout.flush()
    else:
        with open(args.output, "wb") as out:
            g.write(out, args.count)
    if args.totals:
        with open(args.totals, "w") as f:
            json.dump(g.tot.to_json(), f, indent=1, sort_keys=False)
            f.write("\n")
    t = g.tot.to_json()
    print("generated %d events (%d accepted, %d rejected, %d blank lines) in %.2f s"
          % (args.count, t["events"]["accepted"], t["events"]["rejected"], t["blank_lines"],
             time.monotonic() - t0), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
