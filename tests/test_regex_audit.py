"""Every regular expression in minicaffe/ has been checked for super-linear backtracking.

Files we read come from users and from the network, so a regex applied to their text must run
in linear time (the prototxt tokenizer's number pattern once took hours on a 1 MB line). This
test finds every `re.*(pattern, ...)` call by walking the source (ast) and fails on one that is
not in AUDITED below. To add one: make sure no two quantifiers in one alternative can consume
the same character (or that the text it sees is bounded), add a hostile case for it to
tests/prototxt/test_linear_time.py or next to its reader if it sees unbounded text, then add
its key here (the failure message prints it) with the reason.
"""
import ast
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "minicaffe"
_RE_FUNCS = {"compile", "match", "fullmatch", "search", "sub", "subn", "split", "findall",
             "finditer"}

# (file, sha1 of the pattern's source with whitespace collapsed, first 12 digits) -> why linear
AUDITED = {
    ("minicaffe/prototxt/text.py", "410e6711c479"):
        "_TOKEN_RE: the alternatives of each token kind never let two quantifiers take the same "
        "character; hostile megabyte inputs in tests/prototxt/test_linear_time.py",
    ("minicaffe/prototxt/text.py", "c44fd9eda235"):
        "octal escape: at most 3 characters, on a 3-character slice",
    ("minicaffe/prototxt/text.py", "ff77ca037c21"):
        "\\x escape: at most 2 characters, on a 2-character slice",
    ("minicaffe/prototxt/text.py", "e900b89da10f"):
        "\\u / \\U escape: fixed width 4 or 8, on a slice of that width",
    ("minicaffe/prototxt/bind.py", "6860dc700a07"):
        "_INT_RE: fullmatch on one token; the three alternatives start differently and each "
        "has one digit run (test_linear_time: long decimal/octal/hex integers)",
}


def _key(path, segment):
    text = " ".join(segment.split())
    return (path, hashlib.sha1(text.encode()).hexdigest()[:12])


def _regex_calls():
    """{key: source of the pattern argument} for every re.* call in minicaffe/."""
    found = {}
    for file in sorted(PACKAGE.rglob("*.py")):
        source = file.read_text()
        tree = ast.parse(source)
        rel = file.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "re":
                raise AssertionError(f"{rel}:{node.lineno}: import re's functions through "
                                     "`import re` so this audit can find the patterns")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not (alias.name == "re" and alias.asname), \
                        f"{rel}:{node.lineno}: `import re as {alias.asname}` hides patterns"
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                    and node.func.attr in _RE_FUNCS and node.args):
                segment = ast.get_source_segment(source, node.args[0])
                found[_key(rel, segment)] = f"{rel}:{node.lineno}: {segment[:200]}"
    return found


def test_every_regex_in_the_package_is_audited():
    found = _regex_calls()
    new = {k: v for k, v in found.items() if k not in AUDITED}
    assert not new, ("regular expressions not audited for linear time (see this file's "
                     "docstring):\n" + "\n".join(f"  {k!r}: {v}" for k, v in new.items()))


def test_the_audit_lists_no_regex_that_is_gone():
    stale = set(AUDITED) - set(_regex_calls())
    assert not stale, f"AUDITED names patterns no longer in the source: {sorted(stale)}"
