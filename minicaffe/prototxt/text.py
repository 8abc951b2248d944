"""Protobuf text format as Caffe files use it: tokens with positions, then a tree of entries.

This layer knows only syntax. `parse_entries(source)` turns text into a list of `Entry`
(field name + a scalar token, a block of entries, or a `[...]` list of either); the schema is
applied afterwards by `bind.py`. Accepted: `name: value`, `name { ... }` and `name: { ... }`
(also `< ... >`), `name: [v1, v2]`, optional `,`/`;` after a field, `#` comments, strings in
either quote kind with C escapes and adjacent literals concatenated, integers (decimal, hex,
octal), floats (`1e-4`, `.5`, `1.5f`, `inf`, `-inf`, `nan`), identifiers (enums, booleans).
"""
import re
from dataclasses import dataclass, field

from minicaffe.errors import ParseError

MAX_DEPTH = 100  # protobuf's own default recursion limit
_SHOWN_LINE = 120  # characters of a source line an error message shows at most


class Source:
    """The text being parsed, its path (or None) and line lookup for error carets."""

    def __init__(self, text, path=None):
        self.text, self.path = text, path
        self.lines = text.split("\n")

    def line(self, number):
        """Line `number` (1-based) for display: no CR, tabs shown as one space so that a caret
        placed by column lines up."""
        if not 1 <= number <= len(self.lines):
            return ""
        return self.lines[number - 1].rstrip("\r").replace("\t", " ")

    def error(self, message, line, column):
        """A ParseError at (line, column) showing that line with a caret (a long line shown
        as the part around the column, so the caret still points at it)."""
        text = self.line(line)
        if len(text) <= _SHOWN_LINE:
            return ParseError(message, self.path, line, column, text)
        start = max(0, min(column - 1 - _SHOWN_LINE // 2, len(text) - _SHOWN_LINE))
        shown = ("..." if start else "") + text[start:start + _SHOWN_LINE] + \
            ("..." if start + _SHOWN_LINE < len(text) else "")
        return ParseError(message, self.path, line, column, shown,
                          caret_column=column - start + (3 if start else 0))


@dataclass
class Token:
    kind: str  # "ident", "number", "string", "punct", "eof"
    text: str  # the source text; for strings the decoded bytes live in `value`
    line: int
    column: int
    value: object = None


@dataclass
class Entry:
    """One field occurrence: `value` is a Token (scalar), a Block, or a ListValue."""
    name: str
    token: Token  # the field-name token (its position is the field's position)
    value: object


@dataclass
class Block:
    entries: list
    open: Token
    close: str = "}"


@dataclass
class ListValue:
    items: list = field(default_factory=list)  # Tokens or Blocks
    open: Token = None


# Linear time on any text: no two quantifiers of one alternative can take the same character,
# so when the lookahead after a number fails, each digit given back costs one step (the old
# `[0-9]+\.?[0-9]*` split a run of digits every possible way: quadratic, hours on a 1 MB line).
# tests/prototxt/test_linear_time.py runs megabyte-sized hostile inputs against it.
_TOKEN_RE = re.compile(r"""
    (?P<space>[ \t\r\f\v]+)
  | (?P<newline>\n)
  | (?P<comment>\#[^\n]*)
  | (?P<number>-?(?:0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fF]?)
        (?![A-Za-z0-9_.]))
  | (?P<badnumber>-?[0-9.][A-Za-z0-9_.+\-]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<string>["'])
  | (?P<punct>[{}\[\]<>:,;/\-])
""", re.VERBOSE)

_SIMPLE_ESCAPES = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11,
                   "\\": 92, "'": 39, '"': 34, "?": 63}


def excerpt(text, limit=60):
    """`text` for an error message: cut to its first characters when longer than `limit`, so a
    megabyte-long token gives a readable message."""
    if len(text) <= limit:
        return text
    return f"{text[:limit - 20]}... ({len(text)} characters)"


def tokenize(source):
    """List of Tokens ending with an 'eof' token; ParseError on a bad character or string."""
    text, tokens = source.text, []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        column = pos - line_start + 1
        if m is None:
            ch = text[pos]
            raise source.error(f"unexpected character {ch!r}", line, column)
        kind = m.lastgroup
        if kind == "badnumber":
            raise source.error(f"malformed number '{excerpt(m.group())}'", line, column)
        if kind == "newline":
            line, line_start = line + 1, m.end()
        elif kind == "string":
            value, end = _read_string(source, pos, line, column)
            tokens.append(Token("string", text[pos:end], line, column, value))
            pos = end
            continue
        elif kind not in ("space", "comment"):
            tokens.append(Token(kind, m.group(), line, column))
        pos = m.end()
    tokens.append(Token("eof", "", line, pos - line_start + 1))
    return tokens


def _read_string(source, start, line, column):
    """Decode a quoted literal starting at `start`: (bytes, end offset)."""
    text, quote = source.text, source.text[start]
    out, i = bytearray(), start + 1
    while True:
        if i >= len(text) or text[i] == "\n":
            raise source.error("unterminated string (missing closing " + quote + ")",
                               line, column)
        ch = text[i]
        if ch == quote:
            return bytes(out), i + 1
        if ch != "\\":
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        esc = text[i + 1] if i + 1 < len(text) else ""
        col = column + (i - start)
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc in "01234567" and esc:
            digits = re.match(r"[0-7]{1,3}", text[i + 1:i + 4]).group()
            value = int(digits, 8)
            if value > 255:
                raise source.error(f"octal escape \\{digits} is larger than a byte", line, col)
            out.append(value)
            i += 1 + len(digits)
        elif esc in "xX":
            m = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2:i + 4])
            if m is None:
                raise source.error("\\x escape needs hex digits", line, col)
            out.append(int(m.group(), 16))
            i += 2 + len(m.group())
        elif esc in "uU":
            width = 4 if esc == "u" else 8
            m = re.fullmatch(r"[0-9a-fA-F]{%d}" % width, text[i + 2:i + 2 + width])
            if m is None or int(m.group(), 16) > 0x10FFFF:
                raise source.error(f"\\{esc} escape needs {width} hex digits", line, col)
            out += chr(int(m.group(), 16)).encode("utf-8", "surrogatepass")
            i += 2 + width
        else:
            raise source.error(f"unknown escape sequence \\{esc}", line, col)


class _Parser:
    def __init__(self, source):
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0

    def peek(self):
        return self.tokens[self.i]

    def next(self):
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def error(self, message, tok):
        return self.source.error(message, tok.line, tok.column)

    def entries(self, closer, opener, depth):
        if depth > MAX_DEPTH:
            raise self.error(f"messages nested deeper than {MAX_DEPTH} levels", opener)
        out = []
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                if closer is None:
                    return out
                raise self.error(
                    f"unexpected end of file: '{opener.text}' opened at line {opener.line}, "
                    f"column {opener.column} is never closed (missing '{closer}')", tok)
            if tok.kind == "punct" and tok.text in "}>":
                if closer is None:
                    raise self.error(f"unbalanced '{tok.text}': no open block to close", tok)
                if tok.text != closer:
                    raise self.error(f"expected '{closer}' to close the block opened at line "
                                     f"{opener.line}, column {opener.column}, "
                                     f"found '{tok.text}'", tok)
                self.next()
                return out
            out.append(self.field(depth))
            if self.peek().kind == "punct" and self.peek().text in ",;":
                self.next()

    def field(self, depth):
        name = self.next()
        if name.kind == "punct" and name.text == "[":
            raise self.error("extension and Any fields ('[...]') are not supported", name)
        if name.kind != "ident":
            raise self.error(f"expected a field name, found {_describe(name)}", name)
        tok = self.peek()
        if tok.kind == "punct" and tok.text == ":":
            self.next()
            tok = self.peek()
            if tok.kind == "punct" and tok.text == "[":
                return Entry(name.text, name, self.list_value(depth))
            if tok.kind == "punct" and tok.text in "{<":
                return Entry(name.text, name, self.block(depth))
            return Entry(name.text, name, self.scalar(name))
        if tok.kind == "punct" and tok.text in "{<":
            return Entry(name.text, name, self.block(depth))
        raise self.error(f"expected ':' or '{{' after field name '{excerpt(name.text)}', "
                         f"found {_describe(tok)}", tok)

    def block(self, depth):
        opener = self.next()
        closer = "}" if opener.text == "{" else ">"
        return Block(self.entries(closer, opener, depth + 1), opener, closer)

    def list_value(self, depth):
        opener = self.next()
        value = ListValue([], opener)
        if self.peek().kind == "punct" and self.peek().text == "]":
            self.next()
            return value
        while True:
            tok = self.peek()
            if tok.kind == "punct" and tok.text in "{<":
                value.items.append(self.block(depth))
            else:
                value.items.append(self.scalar(opener))
            tok = self.next()
            if tok.kind == "punct" and tok.text == "]":
                return value
            if not (tok.kind == "punct" and tok.text == ","):
                if tok.kind == "eof":
                    raise self.error(f"unexpected end of file: '[' opened at line "
                                     f"{opener.line}, column {opener.column} is never closed "
                                     "(missing ']')", tok)
                raise self.error(f"expected ',' or ']' in list, found {_describe(tok)}", tok)

    def scalar(self, name):
        tok = self.next()
        if tok.kind in ("number", "ident"):
            return tok
        if tok.kind == "string":
            # Adjacent literals concatenate, as in C: "abc" 'def' == "abcdef".
            parts, texts = [tok.value], [tok.text]
            while self.peek().kind == "string":
                nxt = self.next()
                parts.append(nxt.value)
                texts.append(nxt.text)
            return Token("string", " ".join(texts), tok.line, tok.column, b"".join(parts))
        if tok.kind == "punct" and tok.text == "-":
            word = self.peek()
            if word.kind == "ident":
                self.next()
                return Token("ident", "-" + word.text, tok.line, tok.column)
        if tok.kind == "eof":
            raise self.error(f"unexpected end of file: field '{name.text}' has no value", tok)
        raise self.error(f"expected a value after '{name.text}:', found {_describe(tok)}", tok)


def _describe(tok):
    if tok.kind == "eof":
        return "end of file"
    if tok.kind == "string":
        return f"string {excerpt(tok.text)}"
    return f"'{excerpt(tok.text)}'"


def parse_entries(source):
    """The top-level entries of `source` (a Source); ParseError on any syntax error."""
    parser = _Parser(source)
    return parser.entries(None, None, 0)
