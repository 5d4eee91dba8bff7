"""Console forms and admin-API payloads turned into tenant-service changes, and the service's problems
turned into {"field", "message", "fix"} (the fix is the part of the message that says what to do)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from presence.categories import Category
from tenants.schema import OPTION_FIELDS, TenantConfigError

BOOLEAN_OPTIONS = tuple(name for name in OPTION_FIELDS if name != "teams_presence_mode")

_FIXES = {
    "poll_interval_s": "enter a number of seconds between 1 and 3600, e.g. 2",
    "selection.starface_group": "enter the STARFACE group's name as under Admin > Gruppen (or its id), "
                                "or leave it empty with mode all_except_listed",
    "microsoft.secret_expires_at": "enter the date as YYYY-MM-DD, e.g. 2027-06-30, or leave it empty",
    "log_level": "choose one of ERROR, WARN, INFO, DEBUG, TRACE",
}


def split_problem(field: str, message: str) -> dict[str, str]:
    """{"field", "message", "fix"}: the fix is what follows the first "; " of the service's message (or its
    "e.g." example), else a fix known for the field."""
    what, sep, fix = message.partition("; ")
    if not sep:
        for marker in (", e.g. ", " (e.g. "):
            if marker in message:
                what, _, example = message.partition(marker)
                fix = "e.g. " + example.rstrip(")")
                break
    if not fix:
        key = next((k for k in _FIXES if field.endswith(k)), None)
        fix = _FIXES[key] if key else "correct the value and send it again"
    return {"field": field, "message": what.strip() or message, "fix": fix.strip()}


def problems(exc: TenantConfigError) -> list[dict[str, str]]:
    return [split_problem(field, message) for field, message in exc.problems]


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def general_changes(form: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "name": _text(form, "name"), "description": _text(form, "description"),
        "enabled": form.get("enabled") == "on", "log_level": _text(form, "log_level"),
        "poll_interval_s": _text(form, "poll_interval_s"),
        "options.teams_presence_mode": _text(form, "teams_presence_mode"),
    }
    for name in BOOLEAN_OPTIONS:
        changes[f"options.{name}"] = form.get(name) == "on"
    return changes


def selection_changes(form: Mapping[str, Any]) -> dict[str, Any]:
    group = _text(form, "starface_group")
    ids = _text(form, "login_ids").replace("\n", ",").replace(";", ",")
    return {"selection": {"mode": _text(form, "mode"), "starface_group": group or None,
                          "starface_group_id": None,
                          "login_ids": [part.strip() for part in ids.split(",") if part.strip()]}}


def rule_changes(form: Mapping[str, Any]) -> dict[str, Any]:
    rules = {}
    for category in Category:
        text = form.get(f"chat_text.{category.value}")
        text = text if isinstance(text, str) else ""
        rules[category.value] = {"dnd": _text(form, f"dnd.{category.value}"), "chat_text": text or None}
    return {"rules": rules}


def auth_changes(form: Mapping[str, Any], has_bridge: bool) -> dict[str, Any]:
    """Secrets only when a new value was typed (the fields are write-only and start empty)."""
    changes: dict[str, Any] = {
        "microsoft.directory_id": _text(form, "directory_id"),
        "microsoft.client_id": _text(form, "client_id"),
        "microsoft.secret_expires_at": _text(form, "secret_expires_at") or None,
        "starface.base_url": _text(form, "starface_base_url"),
        "starface.login_id": _text(form, "starface_login_id"),
    }
    secrets = (("client_secret", "microsoft.client_secret"), ("starface_password", "starface.password"))
    for field, key in secrets:
        value = form.get(field)
        if isinstance(value, str) and value.strip():
            changes[key] = value
    if form.get("bridge_enabled") == "on":
        bridge: dict[str, Any] = {"instance": _text(form, "bridge_instance")}
        secret = form.get("bridge_secret")
        if isinstance(secret, str) and secret.strip():
            bridge["secret"] = secret
        changes["starface.bridge"] = bridge
    elif has_bridge:
        changes["starface.bridge"] = None
    return changes
