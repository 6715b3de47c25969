r"""Parse AIP-160 filter strings into the typed syntax tree of :mod:`.filtering`.

Grammar (a subset of AIP-160; keywords are uppercase only)::

    filter      := [conjunction] EOF
    conjunction := disjunction { ["AND"] disjunction }   (no keyword: implicit AND)
    disjunction := unary { "OR" unary }
    unary       := ("NOT" | "-") unary | primary
    primary     := "(" conjunction ")" | comparison
    comparison  := field op value
    field       := NAME | MAP "." KEY                    (KEY: [A-Za-z_][A-Za-z0-9_.-]{0,62})
    op          := "=" | "!=" | "<" | "<=" | ">" | ">=" | ":"
    value       := WORD | "-" WORD | STRING
    STRING      := '...' | "..."                         (escapes: \\ \" \' \*)

Precedence follows AIP-160, not most programming languages: ``OR`` binds tighter than
``AND``, so ``a AND b OR c`` means ``a AND (b OR c)`` and ``a b OR c`` means ``a AND (b OR c)``.
``NOT`` / ``-`` bind tightest. The tree is normalised: ``And`` never directly holds an ``And``
and ``Or`` never an ``Or`` (parentheses of the same kind are flattened), and both have at
least two operands.

Values are converted by field kind. Quoting never changes a value's meaning; it only lets a
value hold spaces, operators, parentheses, keywords or a literal ``*`` (written ``\*``). An
unescaped trailing ``*`` on a STRING compared with ``=``/``!=`` is a prefix match;
``<map>.<key>:*`` tests that a key is present; ``:`` on a STRING with a value means "contains".
On a repeated field (``datasets.uri``) a comparison holds if any element satisfies it, ``:``
with a value means "has an element equal to it" and ``:*`` means "has any element".
Timestamps are quoted RFC 3339 strings with a zone; integers must fit in 64 bits.

Every error is :class:`~.errors.InvalidArgument` with reason ``INVALID_FILTER`` and a message
``filter: position N: ...`` (N counts characters, i.e. code points, from 1). Hostile input is
bounded: at most 2000 characters, 32 levels of nesting (parentheses and negations) and 64
comparisons.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum

from .errors import InvalidArgument, Reason
from .filtering import (
    And,
    Comparison,
    Expr,
    FieldKind,
    FieldSpec,
    FilterSchema,
    Not,
    Op,
    Or,
    Value,
    split_field,
)

MAX_FILTER_LENGTH = 2000
MAX_DEPTH = 32
MAX_COMPARISONS = 64

MAP_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}")
"""Keys accepted after a map prefix (``labels.<key>``, ``metrics.<key>``); use ``fullmatch``."""

_INT_RE = re.compile(r"[+-]?[0-9]+")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TIMESTAMP_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_KEYWORDS = frozenset({"AND", "OR", "NOT"})
_OPERATORS = {op.value: op for op in Op}
_SPECIAL = frozenset("()\"'=!<>:")
_ORDERING_OPS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})
_MAX_SHOWN = 40  # longest token text quoted back in an error message


class _Kind(Enum):
    WORD = "word"
    STRING = "string"
    OP = "operator"
    LPAREN = "("
    RPAREN = ")"
    MINUS = "-"
    KEYWORD = "keyword"
    EOF = "end"


@dataclass(frozen=True)
class _Token:
    """A lexeme. ``pos`` is 1-based; ``end`` is the 0-based index just past it.

    ``stars`` lists the unescaped ``*`` characters of a WORD or STRING as (index in ``text``,
    1-based source position).
    """

    kind: _Kind
    text: str
    pos: int
    end: int
    stars: tuple[tuple[int, int], ...] = ()


def parse_filter(text: str, schema: FilterSchema) -> Expr | None:
    """The typed tree for ``text`` checked against ``schema``; None if ``text`` is blank."""
    if len(text) > MAX_FILTER_LENGTH:
        raise _error(
            MAX_FILTER_LENGTH + 1,
            f"filter is longer than {MAX_FILTER_LENGTH} characters ({len(text)})",
        )
    tokens = _tokenize(text)
    if tokens[0].kind is _Kind.EOF:
        return None
    return _Parser(tokens, schema).parse()


def _error(pos: int, description: str) -> InvalidArgument:
    return InvalidArgument.field(
        "filter", f"position {pos}: {description}", reason=Reason.INVALID_FILTER
    )


def _shown(text: str) -> str:
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...")


# -- tokenizer ---------------------------------------------------------------------------------


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "(":
            tokens.append(_Token(_Kind.LPAREN, c, i + 1, i + 1))
            i += 1
        elif c == ")":
            tokens.append(_Token(_Kind.RPAREN, c, i + 1, i + 1))
            i += 1
        elif c == "-":
            tokens.append(_Token(_Kind.MINUS, c, i + 1, i + 1))
            i += 1
        elif c in "=!<>:":
            two = text[i : i + 2]
            if two in ("!=", "<=", ">="):
                tokens.append(_Token(_Kind.OP, two, i + 1, i + 2))
                i += 2
            elif c == "!":
                raise _error(i + 1, "unexpected '!' (use '!=' to compare, NOT or '-' to negate)")
            else:
                tokens.append(_Token(_Kind.OP, c, i + 1, i + 1))
                i += 1
        elif c in "\"'":
            token = _quoted(text, i)
            tokens.append(token)
            i = token.end
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 1
            word = text[start:i]
            stars = tuple((j, start + j + 1) for j, ch in enumerate(word) if ch == "*")
            kind = _Kind.KEYWORD if word in _KEYWORDS else _Kind.WORD
            tokens.append(_Token(kind, word, start + 1, i, stars))
    tokens.append(_Token(_Kind.EOF, "", n + 1, n))
    return tokens


def _quoted(text: str, start: int) -> _Token:
    """The string literal opening at ``text[start]``, with its escapes resolved."""
    quote = text[start]
    chars: list[str] = []
    stars: list[tuple[int, int]] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            return _Token(_Kind.STRING, "".join(chars), start + 1, i + 1, tuple(stars))
        if c == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped not in ("\\", '"', "'", "*"):
                shown = f"'\\{escaped}'" if escaped else "a backslash at the end"
                raise _error(i + 1, f"unknown escape {shown} (use \\\\, \\\", \\' or \\*)")
            chars.append(escaped)
            i += 2
            continue
        if c == "*":
            stars.append((len(chars), i + 1))
        chars.append(c)
        i += 1
    raise _error(start + 1, f"unterminated string: no closing {quote}")


# -- parser ------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; recursion is bounded by MAX_DEPTH."""

    def __init__(self, tokens: list[_Token], schema: FilterSchema) -> None:
        self._tokens = tokens
        self._i = 0
        self._schema = schema
        self._comparisons = 0

    def parse(self) -> Expr:
        expr = self._conjunction(0)
        token = self._peek()
        if token.kind is _Kind.RPAREN:
            raise _error(token.pos, "unexpected ')' without a matching '('")
        return expr  # the conjunction stops only at ')' or the end

    def _peek(self) -> _Token:
        return self._tokens[self._i]

    def _next(self) -> _Token:
        token = self._tokens[self._i]
        if token.kind is not _Kind.EOF:
            self._i += 1
        return token

    def _is_keyword(self, token: _Token, word: str) -> bool:
        return token.kind is _Kind.KEYWORD and token.text == word

    def _conjunction(self, depth: int) -> Expr:
        operands = [self._disjunction(depth, after=None)]
        while True:
            token = self._peek()
            if token.kind in (_Kind.EOF, _Kind.RPAREN):
                break
            if self._is_keyword(token, "AND"):
                self._next()
                operands.append(self._disjunction(depth, after="'AND'"))
            else:  # juxtaposition: implicit AND
                operands.append(self._disjunction(depth, after=None))
        return _combine(And, operands)

    def _disjunction(self, depth: int, after: str | None) -> Expr:
        operands = [self._unary(depth, after)]
        while self._is_keyword(self._peek(), "OR"):
            self._next()
            operands.append(self._unary(depth, after="'OR'"))
        return _combine(Or, operands)

    def _unary(self, depth: int, after: str | None) -> Expr:
        token = self._peek()
        if token.kind is _Kind.MINUS or self._is_keyword(token, "NOT"):
            self._enter(token, depth)
            self._next()
            return Not(self._unary(depth + 1, after=f"'{token.text}'"))
        if token.kind is _Kind.LPAREN:
            self._enter(token, depth)
            self._next()
            if self._peek().kind is _Kind.RPAREN:
                raise _error(self._peek().pos, "expected a comparison inside '()'")
            inner = self._conjunction(depth + 1)
            close = self._peek()
            if close.kind is not _Kind.RPAREN:
                raise _error(
                    close.pos,
                    f"expected ')' to close the '(' at position {token.pos}, "
                    f"found {self._describe(close)}",
                )
            self._next()
            return inner
        return self._comparison(after)

    def _enter(self, token: _Token, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise _error(token.pos, f"nesting is deeper than {MAX_DEPTH} levels")

    def _comparison(self, after: str | None) -> Expr:
        field_token = self._next()
        if field_token.kind is not _Kind.WORD:
            where = f" after {after}" if after else ""
            raise _error(
                field_token.pos,
                f"expected a field name, NOT or '('{where}, found {self._describe(field_token)}",
            )
        self._comparisons += 1
        if self._comparisons > MAX_COMPARISONS:
            raise _error(field_token.pos, f"more than {MAX_COMPARISONS} comparisons")
        spec, is_map = self._field(field_token)
        op_token = self._next()
        if op_token.kind is not _Kind.OP:
            raise _error(
                op_token.pos,
                f"expected an operator (= != < <= > >= :) after {_shown(field_token.text)}, "
                f"found {self._describe(op_token)}",
            )
        op = _OPERATORS[op_token.text]
        value = self._value(op_token)
        return _convert(field_token.text, spec, is_map, op, op_token.pos, value)

    def _field(self, token: _Token) -> tuple[FieldSpec, bool]:
        name = token.text
        spec = self._schema.fields.get(name)
        if spec is not None:
            return spec, False
        head, key = split_field(name)
        map_spec = self._schema.maps.get(head)
        if map_spec is not None and key is not None:
            if not key:
                raise _error(token.pos + len(name), f"expected a key after {name!r}")
            if not MAP_KEY_RE.fullmatch(key):
                raise _error(
                    token.pos + len(head) + 1,
                    f"invalid key {_shown(key)} for {head!r}: keys match {MAP_KEY_RE.pattern}",
                )
            return map_spec, True
        allowed = sorted(self._schema.fields) + [f"{m}.<key>" for m in sorted(self._schema.maps)]
        hint = " (AND, OR and NOT must be uppercase)" if name.upper() in _KEYWORDS else ""
        raise _error(
            token.pos, f"unknown field {_shown(name)}{hint}; allowed: {', '.join(allowed)}"
        )

    def _value(self, op_token: _Token) -> _Token:
        token = self._next()
        if token.kind in (_Kind.WORD, _Kind.STRING):
            return token
        if token.kind is _Kind.MINUS:
            word = self._peek()
            if word.kind is _Kind.WORD and word.pos == token.end + 1:
                self._next()
                stars = tuple((j + 1, pos) for j, pos in word.stars)
                return _Token(_Kind.WORD, "-" + word.text, token.pos, word.end, stars)
        found = self._describe(token)
        if token.kind is _Kind.KEYWORD:
            found += " (quote it to use it as a value)"
        raise _error(token.pos, f"expected a value after {op_token.text!r}, found {found}")

    @staticmethod
    def _describe(token: _Token) -> str:
        if token.kind is _Kind.EOF:
            return "the end of the filter"
        if token.kind is _Kind.STRING:
            return f"the string {_shown(token.text)}"
        return _shown(token.text)


def _combine(node: type[And] | type[Or], operands: list[Expr]) -> Expr:
    """One operand as is; several as ``node`` with nested nodes of the same type flattened."""
    if len(operands) == 1:
        return operands[0]
    flat: list[Expr] = []
    for operand in operands:
        if isinstance(operand, node):
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    return node(tuple(flat))


# -- values ------------------------------------------------------------------------------------


def _convert(
    field: str, spec: FieldSpec, is_map: bool, op: Op, op_pos: int, token: _Token
) -> Comparison:
    """Check ``op`` against the field's kind and turn the value token into a typed value."""
    kind = spec.kind
    text, stars = token.text, token.stars
    if op is Op.HAS:
        if text == "*" and stars:
            if not is_map and not spec.repeated:
                raise _error(
                    op_pos,
                    f"':*' (presence) works on map keys like labels.<key> and on repeated "
                    f"fields, not {field!r}",
                )
            return Comparison(field, Op.HAS, None)
        if kind is not FieldKind.STRING:
            raise _error(op_pos, f"operator ':' is not supported on {field!r} ({kind})")
        if stars:
            raise _error(stars[0][1], "'*' is not allowed in a ':' value (write \\* in quotes)")
        return Comparison(field, Op.HAS, text)
    if op in _ORDERING_OPS and kind in (FieldKind.ENUM, FieldKind.BOOL):
        raise _error(op_pos, f"operator {op.value!r} is not supported on {field!r} ({kind})")
    if stars:
        return _prefix(field, kind, op, text, stars)
    return Comparison(field, op, _typed(field, spec, token))


def _prefix(
    field: str, kind: FieldKind, op: Op, text: str, stars: tuple[tuple[int, int], ...]
) -> Comparison:
    last_index, last_pos = stars[-1]
    if kind is not FieldKind.STRING:
        raise _error(last_pos, f"'*' prefix matching only works on text fields, not {field!r}")
    if op not in (Op.EQ, Op.NE):
        raise _error(last_pos, "'*' prefix matching only works with '=' or '!='")
    if len(stars) > 1 or last_index != len(text) - 1:
        pos = stars[0][1] if last_index == len(text) - 1 else last_pos
        raise _error(pos, "'*' is only allowed at the end of a value (write \\* in quotes)")
    return Comparison(field, op, text[:-1], prefix=True)


def _typed(field: str, spec: FieldSpec, token: _Token) -> Value:
    text, pos = token.text, token.pos
    kind = spec.kind
    if kind is FieldKind.STRING:
        return text
    if kind is FieldKind.ENUM:
        if text in spec.enum_values:
            return text
        raise _error(
            pos,
            f"invalid value {_shown(text)} for {field!r}; "
            f"expected one of {', '.join(spec.enum_values)}",
        )
    if kind is FieldKind.BOOL:
        if text in ("true", "false"):
            return text == "true"
        raise _error(pos, f"expected true or false for {field!r}, found {_shown(text)}")
    if kind is FieldKind.INTEGER:
        if not _INT_RE.fullmatch(text):
            raise _error(pos, f"expected an integer for {field!r}, found {_shown(text)}")
        number = int(text)
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise _error(pos, f"integer for {field!r} is out of the 64-bit range")
        return number
    if kind is FieldKind.NUMBER:
        value = float(text) if _NUMBER_RE.fullmatch(text) else math.nan
        if not math.isfinite(value):
            raise _error(pos, f"expected a finite number for {field!r}, found {_shown(text)}")
        return value
    return _timestamp(field, token)


def _timestamp(field: str, token: _Token) -> datetime:
    """An RFC 3339 timestamp with a zone, converted to UTC."""
    text, pos = token.text, token.pos
    expected = f'expected a quoted RFC 3339 timestamp for {field!r} like "2026-01-02T03:04:05Z"'
    if token.kind is not _Kind.STRING:
        raise _error(pos, f"{expected}, found {_shown(text)}")
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        hint = " (a time zone, Z or +HH:MM, is required)" if _looks_naive(text) else ""
        raise _error(pos, f"{expected}, found {_shown(text)}{hint}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        if zulu:
            zone = UTC
        else:
            if int(off_h) > 23 or int(off_m) > 59:
                raise ValueError("offset out of range")
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            zone = timezone(-offset if sign == "-" else offset)
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, zone
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _error(pos, f"{_shown(text)} is not a valid timestamp for {field!r}") from None


def _looks_naive(text: str) -> bool:
    return re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt][0-9:.]*)?", text) is not None
