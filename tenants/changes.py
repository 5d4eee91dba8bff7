"""Partial changes to a tenant definition as plain dicts: dotted keys nested, merged, compared.

`teamsconnect tenant set NAME options.set_dnd=false` and the admin API send partial changes; the service
merges them into the stored definition and validates the whole, and reports which settings changed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

#: A value that stands for "the stored secret, unchanged" while a merged update is validated.
KEEP_SECRET = "\x00stored-secret\x00"


def nest(changes: Mapping[str, Any]) -> dict[str, Any]:
    """`{"options.set_dnd": False}` -> `{"options": {"set_dnd": False}}`; nested input passes through."""
    nested: dict[str, Any] = {}
    for key, value in changes.items():
        parts = str(key).split(".")
        node = nested
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        leaf = parts[-1]
        if isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            node[leaf] = deep_merge(node[leaf], nest(value))
        else:
            node[leaf] = nest(value) if isinstance(value, Mapping) else value
    return nested


def deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` laid over it, nested objects merged key by key."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def lookup(data: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path, or None where any part is missing."""
    node: Any = data
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def given(changes: Mapping[str, Any], dotted: str) -> bool:
    """True when ``changes`` holds a (non-null) value at the dotted path."""
    return lookup(changes, dotted) is not None


def plain(value: Any) -> Any:
    """Comparable plain data: str keys, enum values; secrets (stand-ins or SecretStr) dropped."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, Mapping):
        return {
            str(key): plain(item)
            for key, item in value.items()
            if not isinstance(item, SecretStr) and item != KEEP_SECRET
        }
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def changed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    """The dotted paths whose values differ between two plain dicts."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        return [name for key in keys
                for name in changed_paths(before.get(key), after.get(key), f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if before != after else []
