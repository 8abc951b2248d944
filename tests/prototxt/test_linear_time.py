"""The prototxt reader runs in linear time on hostile text and ends in ParseError.

Each case is a megabyte-sized input that a backtracking tokenizer takes hours on (the old number
pattern was quadratic: a 40 kB run of digits followed by a letter did not finish in 12 s). They
run in a child process with a deadline, so a regression fails the test instead of hanging the
suite; the deadline is a hang guard (linear time needs well under a second here), not a
benchmark.
"""
import re
import subprocess
import sys
import textwrap

import pytest

from minicaffe.errors import ParseError
from minicaffe.prototxt import parse_net, parse_solver

N = 1_000_000

# name -> Python expression of the text (N is defined in the child)
HOSTILE = {
    "digits then a letter": "'base_lr: ' + '1' * N + 'a'",
    "negative digits then a letter": "'base_lr: -' + '1' * N + 'x'",
    "fraction then a letter": "'base_lr: ' + '1' * (N // 2) + '.' + '2' * (N // 2) + 'q'",
    "leading dot then a letter": "'base_lr: .' + '5' * N + 'z'",
    "exponent digits then a letter": "'base_lr: 1e' + '7' * N + 'k'",
    "exponent sign digits then a dot": "'base_lr: 1e-' + '7' * N + '.'",
    "hex digits then a g": "'max_iter: 0x' + 'f' * N + 'g'",
    "dotted digits": "'base_lr: ' + '1.' * (N // 2)",
    "digits then an underscore": "'base_lr: ' + '9' * N + '_'",
    "dotted identifier then a dot": "'type: ' + 'a.' * (N // 2)",
    "long decimal integer": "'max_iter: ' + '1' * N",
    "long octal integer": "'max_iter: 0' + '7' * N",
    "long float": "'base_lr: ' + '1' * N + '.5'",
    "unterminated string": "'net: \"' + 'a' * N",
    "escapes in a string": "'net: \"' + '\\\\x4' * (N // 3) + '\"'",
    "comment then garbage": "'#' + 'x' * N + '\\n@'",
    "many minus signs": "'base_lr: ' + '-' * N",
    "nested blocks": "'layer {' * (N // 7)",
    "long unknown field name": "'x' * N + ': 1'",
    "long unknown enum": "'lr_policy: \"fixed\" solver_mode: ' + 'G' * N",
}


def test_hostile_inputs_finish_in_linear_time_with_a_parse_error():
    child = textwrap.dedent(f"""
        import time, warnings
        from minicaffe.errors import ParseError
        from minicaffe.prototxt import parse_solver
        warnings.simplefilter("ignore")
        N = {N}
        cases = {HOSTILE!r}
        for name, expr in cases.items():
            text = eval(expr)
            t0 = time.perf_counter()
            try:
                parse_solver(text)
                outcome = "parsed"
            except ParseError as exc:
                outcome = "ParseError" if len(str(exc)) < 1000 else "ParseError (long message)"
            except Exception as exc:
                outcome = type(exc).__name__ + ": " + str(exc)[:200]
            print(f"{{name}}\\t{{outcome}}\\t{{time.perf_counter() - t0:.3f}}", flush=True)
    """)
    try:
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                             timeout=120)
    except subprocess.TimeoutExpired as exc:
        done = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"the reader did not finish within 120 s; finished cases:\n{done}")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [r[0] for r in rows] == list(HOSTILE)
    allowed = {"ParseError", "parsed"}
    bad = [r for r in rows if r[1] not in allowed]
    assert not bad, bad
    # values that must not parse
    for name in ("digits then a letter", "long decimal integer", "unterminated string",
                 "many minus signs", "nested blocks"):
        assert dict((r[0], r[1]) for r in rows)[name] == "ParseError", name


def test_a_huge_decimal_integer_is_out_of_range_not_a_bare_value_error():
    """int() of more than 4300 decimal digits raises a bare ValueError (CPython's guard against
    quadratic conversion); the reader sees the value cannot fit any integer field first."""
    with pytest.raises(ParseError, match=r"max_iter.* out of range for int32"):
        parse_solver("max_iter: " + "1" * 10000)
    with pytest.raises(ParseError, match=r"out of range for uint32"):
        parse_net('layer { name: "a" type: "Input" top: "d" input_param { shape { dim: 5 } } '
                  'convolution_param { num_output: ' + "9" * 5000 + " } }")


def test_error_messages_show_a_bounded_excerpt_of_a_huge_token():
    for text in ("base_lr: " + "1" * 100000 + "a", "max_iter: " + "1" * 100000,
                 "max_iter: abc" + "d" * 100000):
        with pytest.raises(ParseError) as err:
            parse_solver(text)
        assert len(str(err.value)) < 600, str(err.value)[:300]
        assert re.search(r"\.\.\. \(1000\d\d characters\)", str(err.value)), str(err.value)[:300]
        caret_line = str(err.value).splitlines()[-1]
        assert caret_line.strip() == "^" and len(caret_line) < 200


@pytest.mark.parametrize("before, after", [(500, 500), (10, 5000), (5000, 3)])
def test_the_caret_points_at_the_error_in_an_excerpt_of_a_long_line(before, after):
    text = "base_lr: 0.1" + " " * before + "max_iter: @" + " " * after
    with pytest.raises(ParseError) as err:
        parse_solver(text)
    assert err.value.column == 12 + before + 11
    shown, caret = str(err.value).splitlines()[-2:]
    assert len(shown) < 200 and shown[caret.index("^")] == "@"
