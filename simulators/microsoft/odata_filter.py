"""The subset of OData `$filter` that Graph supports on users and that the connector uses
(graph-api.md sections 5 and 9): `eq`, `in (...)`, `proxyAddresses/any(p:p eq '...')`, `startsWith`,
`endsWith` (advanced query only), combined with `or` / `and`. String comparisons are case-insensitive as
in the directory. Anything else is rejected with Graph's `Request_UnsupportedQuery`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

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


def _clause(text: str, advanced: bool) -> tuple[Predicate, int]:
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        return compile_filter(text[1:-1], advanced)
    if match := _EQ.match(text):
        key, value = _field(match[1]), _unquote(match[2])
        return (lambda item: _values(item, key) == value), 1
    if match := _IN.match(text):
        key, body = _field(match[1]), match[2]
        values = {_unquote(v) for v in _QUOTED.findall(body)}
        if not values or _QUOTED.sub("", body).strip():
            raise FilterError("Invalid filter clause: malformed 'in' list.")
        return (lambda item: _values(item, key) in values), len(values)
    if match := _ANY.match(text):
        value = _unquote(match[2])
        return (lambda item: value in {p.lower() for p in item.get("proxyAddresses", [])}), 1
    if match := _FUNC.match(text):
        func, key, value = match[1].lower(), _field(match[2]), _unquote(match[3])
        if func == "endswith":
            if not advanced:
                raise FilterError("Unsupported Query.")
            return (lambda item: _values(item, key).endswith(value)), 1
        return (lambda item: _values(item, key).startswith(value)), 1
    raise FilterError(f"Invalid filter clause: {text}")


def equality_terms(text: str) -> list[tuple[str, str]] | None:
    """For a filter that only ORs equality clauses (`eq`, `in (...)`, `proxyAddresses/any(...)`, as the
    connector's e-mail look-ups do): every (property, lower-cased value) a matching user must hold, so the
    directory can answer from its index, as Graph does, instead of testing every user. None for any other
    filter (`and`, `startsWith`, ...). Call it only for a filter that `compile_filter` accepted."""
    terms: list[tuple[str, str]] = []
    for alternative in _split(text, "or"):
        if len(_split(alternative, "and")) > 1:
            return None
        clause = alternative.strip()
        if clause.startswith("(") and clause.endswith(")"):
            inner = equality_terms(clause[1:-1])
            if inner is None:
                return None
            terms += inner
        elif match := _EQ.match(clause):
            terms.append((_field(match[1]), _unquote(match[2])))
        elif match := _IN.match(clause):
            terms += [(_field(match[1]), _unquote(v)) for v in _QUOTED.findall(match[2])]
        elif match := _ANY.match(clause):
            terms.append(("proxyAddresses", _unquote(match[2])))
        else:
            return None
    return terms


def compile_filter(text: str, advanced: bool) -> tuple[Predicate, int]:
    """A predicate over user resources and the number of clauses it holds (for the 15-clause limit)."""
    any_of: list[Predicate] = []
    count = 0
    for alternative in _split(text, "or"):
        all_of: list[Predicate] = []
        for part in _split(alternative, "and"):
            predicate, n = _clause(part, advanced)
            all_of.append(predicate)
            count += n
        any_of.append(lambda item, preds=tuple(all_of): all(p(item) for p in preds))
    if count > MAX_CLAUSES:
        raise FilterError(
            f"Too many child clauses specified in search filter expression containing 'OR' "
            f"operators: {count}. Max allowed: {MAX_CLAUSES}."
        )
    return (lambda item: any(p(item) for p in any_of)), count
