#!/usr/bin/env python3
"""Self-test of expo.py (and of gen_events.py's exact number helpers) on
hand-written exposition snippets. Prints one line per test and
`N passed, N failed` last; exit status 1 on any failure."""

import os
import random
import sys
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import expo  # noqa: E402
import gen_events  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def errors_of(text):
    return expo.check(text)


def assert_clean(text):
    errs = errors_of(text)
    assert not errs, "unexpected problems: %s" % errs


def assert_problem(text, fragment):
    errs = errors_of(text)
    assert any(fragment in e for e in errs), "expected a problem containing %r, got %s" % (fragment, errs)


HDR = "# HELP c_total Cost.\n# TYPE c_total counter\n"


@test
def clean_exposition():
    text = (HDR + 'c_total{team="a",project="b"} 1.5\nc_total{team="a",project="c"} 2\n'
            "# HELP g A gauge.\n# TYPE g gauge\ng -3.25e2\n")
    ex = expo.parse(text)
    assert not ex.errors, ex.errors
    assert list(ex.families) == ["c_total", "g"]
    assert ex.families["c_total"].type == "counter"
    assert ex.families["c_total"].help == "Cost."
    assert [s.value for s in ex.families["c_total"].samples] == ["1.5", "2"]
    assert ex.families["g"].samples[0].float_value() == -325.0


@test
def label_value_escaping():
    text = HDR + r'c_total{team="q\"uote",project="back\\slash",source="new\nline"} 1' + "\n"
    ex = expo.parse(text)
    assert not ex.errors, ex.errors
    d = ex.samples[0].labeldict
    assert d == {"team": 'q"uote', "project": "back\\slash", "source": "new\nline"}, d
    assert expo.format_labels(ex.samples[0].labels) == r'{team="q\"uote",project="back\\slash",source="new\nline"}'


@test
def escaped_backslash_before_quote():
    # "a\\" is the value a\ followed by the closing quote, not an escaped quote
    ex = expo.parse(HDR + r'c_total{team="a\\",project="x"} 1' + "\n")
    assert not ex.errors, ex.errors
    assert ex.samples[0].labeldict == {"team": "a\\", "project": "x"}


@test
def non_ascii_label_values():
    text = HDR + 'c_total{team="équipe-données",project="agents-🤖"} 1\n'
    ex = expo.parse(text.encode("utf-8"))
    assert not ex.errors, ex.errors
    assert ex.samples[0].labeldict["project"] == "agents-🤖"


@test
def invalid_escape_detected():
    assert_problem(HDR + r'c_total{team="a\tb"} 1' + "\n", "invalid escape sequence")


@test
def unterminated_label_value_detected():
    assert_problem(HDR + 'c_total{team="a} 1\n', "unterminated label value")


@test
def invalid_utf8_detected():
    data = (HDR + 'c_total{team="x').encode() + b"\xff\xfe" + b'"} 1\n'
    assert_problem(data, "invalid UTF-8")
    data = (HDR + 'c_total{team="x').encode() + b"\xc3" + b'"} 1\n'  # truncated sequence
    assert_problem(data, "invalid UTF-8")


@test
def duplicate_series_detected():
    assert_problem(HDR + 'c_total{team="a",project="b"} 1\nc_total{team="a",project="b"} 2\n',
                   "duplicate series")


@test
def duplicate_series_in_other_label_order_detected():
    assert_problem(HDR + 'c_total{team="a",project="b"} 1\nc_total{project="b",team="a"} 1\n',
                   "duplicate series")


@test
def duplicate_unlabeled_series_detected():
    assert_problem(HDR + "c_total 1\nc_total 1\n", "duplicate series")


@test
def distinct_series_not_duplicates():
    assert_clean(HDR + 'c_total{team="a"} 1\nc_total{team="a "} 1\nc_total{team="a",project=""} 1\nc_total 1\n')


@test
def non_contiguous_family_detected():
    text = (HDR + 'c_total{team="a"} 1\n'
            "# HELP g G.\n# TYPE g gauge\ng 1\n"
            'c_total{team="b"} 1\n')
    assert_problem(text, "c_total is not contiguous")


@test
def help_type_after_samples_detected():
    assert_problem('# TYPE c_total counter\nc_total 1\n# HELP c_total late.\n', "HELP for c_total after its samples")
    assert_problem("# HELP c_total x\n# TYPE c_total counter\nc_total 1\n# TYPE c_total counter\n",
                   "after its samples")


@test
def second_type_detected():
    assert_problem("# HELP c_total x\n# TYPE c_total counter\n# TYPE c_total gauge\nc_total 1\n",
                   "second TYPE")


@test
def sample_without_type_detected():
    assert_problem(HDR + "c_total 1\nother_metric 3\n", "sample other_metric has no TYPE")
    assert_problem("# HELP lonely only help\nlonely 1\n", "sample lonely has no TYPE")


@test
def missing_help_detected():
    assert_problem("# TYPE c_total counter\nc_total 1\n", "has no HELP")


@test
def unknown_type_detected():
    assert_problem("# HELP x x\n# TYPE x countr\nx 1\n", "unknown type")


@test
def missing_final_newline_detected():
    assert_problem(HDR + "c_total 1", "does not end with a line feed")


@test
def carriage_return_detected():
    assert_problem(HDR + "c_total 1\r\n", "carriage return")


@test
def duplicate_and_reserved_label_names_detected():
    assert_problem(HDR + 'c_total{a="1",a="2"} 1\n', "duplicate label name")
    assert_problem(HDR + 'c_total{__name__="x"} 1\n', "reserved label name")


@test
def bad_values_detected():
    assert_problem(HDR + "c_total 1,5\n", "invalid value")
    assert_problem(HDR + "c_total\n", "expected a blank before the value")
    assert_problem(HDR + "c_total 1 2 3\n", "unexpected text")
    assert_problem(HDR + "c_total -1\n", "counter c_total has value -1")
    assert_problem(HDR + "c_total NaN\n", "counter c_total has value NaN")


@test
def timestamps_flagged_unless_allowed():
    text = HDR + "c_total 1 1700000000000\n"
    assert_problem(text, "has a timestamp")
    assert not expo.check(text, allow_timestamps=True)


@test
def tolerant_but_legal_syntax_accepted():
    # blanks around labels, a trailing comma, comments, empty lines, +Inf
    text = ("# a free comment\n\n# HELP g G.\n# TYPE g gauge\n"
            'g{ a = "1" , b="2", } +Inf\n' "g{a=\"3\"}\t-Inf\n")
    ex = expo.parse(text)
    assert not ex.errors, ex.errors
    assert ex.samples[0].labeldict == {"a": "1", "b": "2"}


@test
def help_escapes():
    ex = expo.parse("# HELP g line1\\nline2 back\\\\slash\n# TYPE g gauge\ng 1\n")
    assert not ex.errors, ex.errors
    assert ex.families["g"].help == "line1\nline2 back\\slash"
    assert_problem("# HELP g bad \\q escape\n# TYPE g gauge\ng 1\n", "invalid escape sequence")


@test
def histogram_checks():
    good = ("# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
            'h_seconds_bucket{le="0.1"} 1\nh_seconds_bucket{le="1"} 3\nh_seconds_bucket{le="+Inf"} 4\n'
            "h_seconds_sum 2.5\nh_seconds_count 4\n")
    assert_clean(good)
    assert_problem(good.replace('le="1"} 3', 'le="1"} 0'), "not cumulative")
    assert_problem(good.replace("h_seconds_count 4", "h_seconds_count 5"), "_count 5.0 != +Inf bucket 4.0")
    assert_problem(good.replace('le="+Inf"', 'le="10"'), 'no le="+Inf" bucket')
    assert_problem(good.replace("h_seconds_sum 2.5\n", ""), "no _sum")


@test
def series_mapping():
    text = HDR + 'c_total{team="a",project="b"} 1.5\nc_total{project="c",team="a"} 2\n'
    ex = expo.parse(text)
    m = ex.series("c_total", ("team", "project"))
    assert m == {("a", "b"): "1.5", ("a", "c"): "2"}, m
    try:
        ex.series("c_total", ("team",))
    except ValueError:
        pass
    else:
        raise AssertionError("label-name mismatch not reported")


@test
def exact_decimal_parse():
    p = expo.parse_decimal_nanos
    assert p("123.000000001") == 123_000_000_001
    assert p("5") == 5_000_000_000
    assert p("0.5") == 500_000_000
    assert p("0") == 0
    assert p("0.000000001") == 1
    # beyond float precision: 2^63-1 nanos and a value with 19 significant digits
    assert p("9223372036.854775807") == 9_223_372_036_854_775_807
    assert p("1000000000000.000000001") == 1_000_000_000_000_000_000_001
    for bad in ("5.0", "0.50", "05", ".5", "5.", "-1", "+1", "1e-9", "1E3", "0.1234567891",
                "NaN", "+Inf", "", " 1", "1_000", "0x10"):
        try:
            p(bad)
        except ValueError:
            continue
        raise AssertionError("canonical parse accepted %r" % bad)
    q = lambda s: expo.parse_decimal_nanos(s, canonical=False)  # noqa: E731
    assert q("5.0") == 5 * 10**9 and q("1e-9") == 1 and q("2.50") == 2_500_000_000 and q("1E+6") == 10**15
    for bad in ("1e-10", "-1", "NaN", "Inf", "abc", "0.0000000001"):
        try:
            q(bad)
        except ValueError:
            continue
        raise AssertionError("non-canonical parse accepted %r" % bad)


@test
def exact_integer_parse():
    assert expo.parse_uint("0") == 0
    assert expo.parse_uint("9007199254740993") == 9_007_199_254_740_993
    for bad in ("-1", "1.0", "1e3", "01", "", "+1", "1e+06"):
        try:
            expo.parse_uint(bad)
        except ValueError:
            continue
        raise AssertionError("parse_uint accepted %r" % bad)


@test
def format_nanos_roundtrip():
    rng = random.Random(5)
    for n in [0, 1, 10, 999_999_999, 10**9, 10**15, 2**63 - 1] + [rng.randrange(10**16) for _ in range(2000)]:
        s = expo.format_nanos(n)
        assert expo.parse_decimal_nanos(s) == n, (n, s)
        assert gen_events.fmt_nanos(n) == s, (n, s)


@test
def label_escaping_roundtrip_fuzz():
    rng = random.Random(7)
    alphabet = ['"', "\\", "\n", "n", "a", "{", "}", ",", "=", " ", "\t", "é", "🤖", "#"]
    for _ in range(2000):
        v = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        w = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        text = HDR + "c_total" + expo.format_labels((("team", v), ("project", w))) + " 1\n"
        ex = expo.parse(text.encode("utf-8"))
        assert not ex.errors, (v, ex.errors)
        assert ex.samples[0].labeldict == {"team": v, "project": w}, (v, w)


@test
def gen_events_cost_spellings_are_exact():
    # every spelling the generator uses for cost_usd denotes the same nanos
    rng = random.Random(3)
    for _ in range(20000):
        n = rng.choice((0, 1, 10**9, 10**15, rng.randrange(10**12), rng.randrange(10**6)))
        s = gen_events._fmt_cost_variant(rng, n)
        assert expo.parse_decimal_nanos(s, canonical=False) == n, (n, s)


@test
def gen_events_deterministic_and_oracle_agrees():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        a, b, c = (os.path.join(d, x) for x in "abc")
        ta = gen_events.generate(a, 4000, seed=11, bad_ratio=0.05, unpriced_ratio=0.01)
        tb = gen_events.generate(b, 4000, seed=11, bad_ratio=0.05, unpriced_ratio=0.01)
        gen_events.generate(c, 4000, seed=12, bad_ratio=0.05, unpriced_ratio=0.01)
        with open(a, "rb") as fa, open(b, "rb") as fb, open(c, "rb") as fc:
            da, db, dc = fa.read(), fb.read(), fc.read()
        assert da == db and ta == tb, "same seed, different output"
        assert da != dc, "different seeds, same output"
        assert set(ta["rejected"]) == set(gen_events.REASONS), sorted(ta["rejected"])
        assert ta["lines"] == 4000 and ta["events"]["accepted"] + ta["events"]["rejected"] == 4000
        assert len(da.split(b"\n")) - 1 == 4000 + ta["blank_lines"]
        oracle = gen_events.verify(a)
        for k in ("events", "rejected", "cost_nanos", "tokens", "gpu_nanoseconds", "blank_lines"):
            assert oracle[k] == ta[k], "generator and oracle disagree on %s" % k


def _promtool_or_skip():
    if expo.find_promtool() is None:
        raise Skip("promtool not installed")


class Skip(Exception):
    pass


@test
def promtool_accepts_clean():
    _promtool_or_skip()
    r = expo.run_promtool(HDR + 'c_total{team="a\\"b"} 1.5\n')
    assert r.ok and r.returncode == 0, r


@test
def promtool_lint_problem_is_failure():
    _promtool_or_skip()
    r = expo.run_promtool("# HELP c x\n# TYPE c counter\nc 1\n")  # counter without _total
    assert not r.ok and r.returncode != 0 and "_total" in r.output, r


@test
def promtool_parse_error_is_failure():
    _promtool_or_skip()
    r = expo.run_promtool(HDR + 'c_total{team="a\\q"} 1\n')
    assert not r.ok and "escape" in r.output, r


@test
def promtool_misses_what_expo_catches():
    # documents why expo.py exists: promtool 2.42 accepts both of these
    _promtool_or_skip()
    dup = HDR + 'c_total{team="a"} 1\nc_total{team="a"} 2\n'
    split = HDR + 'c_total{team="a"} 1\n# HELP g G.\n# TYPE g gauge\ng 1\nc_total{team="b"} 1\n'
    for text in (dup, split):
        assert errors_of(text), text
    # (no assertion on promtool's verdict: a newer promtool may catch them)


def main():
    passed = failed = skipped = 0
    for fn in TESTS:
        try:
            fn()
        except Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (fn.__name__, e))
            continue
        except Exception:
            failed += 1
            print("FAIL %s\n%s" % (fn.__name__, traceback.format_exc()))
            continue
        passed += 1
        print("PASS %s" % fn.__name__)
    if skipped:
        print("(%d skipped)" % skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
