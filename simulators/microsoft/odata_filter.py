"""The subset of OData `$filter` that Graph supports on users and that the connector uses
(graph-api.md sections 5 and 9): `eq`, `in (...)`, `proxyAddresses/any(p:p eq '...')`, `startsWith`,
`endsWith` (advanced query only), combined with `or` / `and`. String comparisons are case-insensitive as
in the directory. Anything else is rejected with Graph's `Request_UnsupportedQuery`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

MAX_CLAUSES = 15  # [I] Graph: "Too many child clauses ... containing 'OR' operators: 16. Max allowed: 15."
FILTER_FIELDS = {
    "id": "id",
    "mail": "mail",
    "userprincipalname": "userPrincipalName",
    "displayname": "displayName",
}

_EQ = re.compile(r"^(\w+)\s+eq\s+'((?:[^']|'')*)'$", re.IGNORECASE)
_IN = re.compile(r"^(\w+)\s+in\s+\((.*)\)$", re.IGNORECASE | re.DOTALL)
_ANY = re.compile(r"^proxyAddresses/any\((\w+):\s*\1\s+eq\s+'((?:[^']|'')*)'\)$", re.IGNORECASE)
_FUNC = re.compile(r"^(startswith|endswith)\((\w+),\s*'((?:[^']|'')*)'\)$", re.IGNORECASE)
_QUOTED = re.compile(r"\s*'((?:[^']|'')*)'\s*(?:,|$)")

Predicate = Callable[[dict[str, Any]], bool]


#: (property, lower-cased value) pairs: a user holding any of them may match (Terms below).
Terms = list[tuple[str, str]]


class Compiled(NamedTuple):
    """A compiled filter: the predicate over user resources, the number of clauses it holds (for the
    15-clause limit) and, for a filter that only ORs equality clauses (`eq`, `in (...)`,
    `proxyAddresses/any(...)`, as the connector's e-mail look-ups do), every (property, value) a matching
    user must hold, so the directory answers from its index as Graph does (None for any other filter)."""

    predicate: Predicate
    clauses: int
    terms: Terms | None


class FilterError(ValueError):
    """The filter is malformed or uses something Graph would reject."""


def _split(text: str, keyword: str) -> list[str]:
    """Split at a top-level ` keyword ` (outside quotes and parentheses)."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    token = f" {keyword} "
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and text[i : i + len(token)].lower() == token:
            parts.append(text[start:i])
            start = i = i + len(token)
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _unquote(value: str) -> str:
    return value.replace("''", "'").lower()


def _field(name: str) -> str:
    key = FILTER_FIELDS.get(name.lower())
    if key is None:
        raise FilterError(
            f"Unsupported or invalid query filter clause specified for property '{name}' of resource 'User'."
        )
    return key


def _values(item: dict[str, Any], key: str) -> str:
    return str(item.get(key) or "").lower()


def _clause(text: str, advanced: bool) -> Compiled:
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        return compile_filter(text[1:-1], advanced)
    if match := _EQ.match(text):
        key, value = _field(match[1]), _unquote(match[2])
        return Compiled(lambda item: _values(item, key) == value, 1, [(key, value)])
    if match := _IN.match(text):
        key, body = _field(match[1]), match[2]
        values = {_unquote(v) for v in _QUOTED.findall(body)}
        if not values or _QUOTED.sub("", body).strip():
            raise FilterError("Invalid filter clause: malformed 'in' list.")
        return Compiled(lambda item: _values(item, key) in values, len(values), [(key, v) for v in values])
    if match := _ANY.match(text):
        value = _unquote(match[2])
        return Compiled(lambda item: value in {p.lower() for p in item.get("proxyAddresses", [])}, 1,
                        [("proxyAddresses", value)])
    if match := _FUNC.match(text):
        func, key, value = match[1].lower(), _field(match[2]), _unquote(match[3])
        if func == "endswith":
            if not advanced:
                raise FilterError("Unsupported Query.")
            return Compiled(lambda item: _values(item, key).endswith(value), 1, None)
        return Compiled(lambda item: _values(item, key).startswith(value), 1, None)
    raise FilterError(f"Invalid filter clause: {text}")


def compile_filter(text: str, advanced: bool) -> Compiled:
    """The predicate, clause count and index terms of a `$filter` (see `Compiled`)."""
    any_of: list[Predicate] = []
    count = 0
    terms: Terms | None = []
    for alternative in _split(text, "or"):
        parts = [_clause(part, advanced) for part in _split(alternative, "and")]
        count += sum(part.clauses for part in parts)
        if len(parts) > 1 or parts[0].terms is None or terms is None:
            terms = None  # an `and` or a function: only a scan tells
        else:
            terms += parts[0].terms
        any_of.append(lambda item, preds=tuple(part.predicate for part in parts): all(p(item) for p in preds))
    if count > MAX_CLAUSES:
        raise FilterError(
            f"Too many child clauses specified in search filter expression containing 'OR' "
            f"operators: {count}. Max allowed: {MAX_CLAUSES}."
        )
    return Compiled(lambda item: any(p(item) for p in any_of), count, terms)
