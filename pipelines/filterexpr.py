"""A small, safe filter language for mixture recipes, compiled to pyarrow compute expressions.

Recipes select documents with lines such as ``lang == pt and edu_score >= 0.5``. Nothing is passed to
``eval``: a tokenizer and a recursive-descent parser accept exactly this grammar and build a
``pyarrow.compute.Expression``, so a filter can only compare columns with literals::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | primary
    primary    := "(" expr ")" | comparison
    comparison := COLUMN OP literal
                | COLUMN ["not"] "in" "[" literal ("," literal)* "]"
                | COLUMN "is" ["not"] "null"
    OP         := == | != | >= | <= | > | <
    literal    := number | 'string' | "string" | true | false | bare-word (a string: ``lang == pt``)

Filters run where the data lives (pyarrow dataset scans push them down to row groups), and the
column names are checked against the data's schema before any scan, with the known columns listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<op>==|!=|>=|<=|>|<)
  | (?P<punct>[()\[\],])
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
_OPS = {"==": "equal", "!=": "not_equal", ">=": "greater_equal", "<=": "less_equal", ">": "greater",
        "<": "less"}


class FilterSyntaxError(ValueError):
    """A filter that does not parse, or names an unknown column; the message points at the spot."""


@dataclass(frozen=True)
class _Tok:
    kind: str
    value: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise FilterSyntaxError(_where(text, pos, f"unexpected character {text[pos]!r}"))
        kind = m.lastgroup or ""
        if kind != "ws":
            value = m.group()
            if kind == "word" and value.lower() in _KEYWORDS:
                kind, value = "kw", value.lower()
            out.append(_Tok(kind, value, pos))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


def _where(text: str, pos: int, message: str) -> str:
    return f"{message} at position {pos}:\n  {text}\n  {' ' * pos}^"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.columns: list[str] = []

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, kind: str, value: str | None = None) -> _Tok:
        tok = self.take()
        if tok.kind != kind or (value is not None and tok.value != value):
            wanted = value or kind
            got = tok.value or "end of filter"
            raise FilterSyntaxError(_where(self.text, tok.pos, f"expected {wanted!r}, got {got!r}"))
        return tok

    def is_kw(self, value: str) -> bool:
        tok = self.peek()
        return tok.kind == "kw" and tok.value == value

    def parse(self) -> pc.Expression:
        expr = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise FilterSyntaxError(_where(self.text, tok.pos, f"unexpected {tok.value!r} (missing and/or?)"))
        return expr

    def or_(self) -> pc.Expression:
        expr = self.and_()
        while self.is_kw("or"):
            self.take()
            expr = expr | self.and_()
        return expr

    def and_(self) -> pc.Expression:
        expr = self.not_()
        while self.is_kw("and"):
            self.take()
            expr = expr & self.not_()
        return expr

    def not_(self) -> pc.Expression:
        if self.is_kw("not"):
            self.take()
            return ~self.not_()
        return self.primary()

    def primary(self) -> pc.Expression:
        tok = self.peek()
        if tok.kind == "punct" and tok.value == "(":
            self.take()
            expr = self.or_()
            self.expect("punct", ")")
            return expr
        return self.comparison()

    def literal(self) -> Any:
        tok = self.take()
        if tok.kind == "number":
            return float(tok.value) if any(c in tok.value for c in ".eE") else int(tok.value)
        if tok.kind == "string":
            return re.sub(r"\\(.)", r"\1", tok.value[1:-1])
        if tok.kind == "kw" and tok.value in ("true", "false"):
            return tok.value == "true"
        if tok.kind == "word":
            return tok.value
        raise FilterSyntaxError(_where(self.text, tok.pos, f"expected a value, got {tok.value or 'end of filter'!r}"))

    def comparison(self) -> pc.Expression:
        tok = self.take()
        if tok.kind != "word":
            raise FilterSyntaxError(_where(self.text, tok.pos, f"expected a column name, got {tok.value or 'end'!r}"))
        self.columns.append(tok.value)
        field = pc.field(tok.value)
        nxt = self.peek()
        if nxt.kind == "op":
            self.take()
            return getattr(pc, _OPS[nxt.value])(field, pc.scalar(self.literal()))
        if self.is_kw("is"):
            self.take()
            negate = self.is_kw("not")
            if negate:
                self.take()
            self.expect("kw", "null")
            return pc.is_valid(field) if negate else pc.is_null(field)
        negate = self.is_kw("not")
        if negate:
            self.take()
        if self.is_kw("in"):
            self.take()
            self.expect("punct", "[")
            values = [self.literal()]
            while self.peek().kind == "punct" and self.peek().value == ",":
                self.take()
                values.append(self.literal())
            self.expect("punct", "]")
            expr = pc.is_in(field, value_set=pa.array(values))
            return ~expr if negate else expr
        raise FilterSyntaxError(_where(self.text, nxt.pos, f"expected a comparison (==, !=, >=, <=, >, <, in, is) "
                                                           f"after {tok.value!r}, got {nxt.value or 'end'!r}"))


@dataclass(frozen=True)
class CompiledFilter:
    """A parsed filter: the pyarrow expression and the columns it reads."""

    text: str
    expression: pc.Expression
    columns: tuple[str, ...]

    def check_columns(self, schema: pa.Schema, source: str = "data") -> None:
        """Fail before scanning when the filter names a column the data does not have."""
        unknown = [c for c in self.columns if c not in schema.names]
        if unknown:
            raise FilterSyntaxError(f"filter {self.text!r}: unknown column(s) {', '.join(map(repr, unknown))} in "
                                    f"{source}; available: {', '.join(schema.names)}")


def compile_filter(text: str) -> CompiledFilter:
    """Parse ``text`` into a pyarrow expression (raises FilterSyntaxError with the position)."""
    if not text or not text.strip():
        raise FilterSyntaxError("empty filter")
    parser = _Parser(text)
    expr = parser.parse()
    return CompiledFilter(text, expr, tuple(dict.fromkeys(parser.columns)))
