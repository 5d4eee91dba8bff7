"""A tenant definition as an operator writes it (JSON file, CLI flags, `key=value` changes), validated.

`TenantConfig` is the one shape every entry point goes through: `create_tenant` stores a new one,
`update_tenant` merges a partial change into the stored tenant and validates the whole result before
touching the row, so a bad change leaves nothing half-written (design.md, invariants). `tenant_summary`
is the same shape back, with every secret shown as "set" / "not set".

Every problem is reported as `TenantConfigError` with one `field: what is wrong and how to fix it` line per
problem. Pydantic's own `str(ValidationError)` is never shown: it echoes input values, which may be secrets.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.crypto import SecretBox
from models.secrets import set_secrets
from models.tenant import (
    DEFAULT_BRIDGE_INSTANCE,
    DEFAULT_GRAPH_BASE_URL,
    DEFAULT_LOGIN_BASE_URL,
    DEFAULT_POLL_INTERVAL_S,
    SelectionMode,
    StatusRule,
    TeamsPresenceMode,
    Tenant,
    TenantHealth,
)
from presence.categories import Category
from presence.policy import CHAT_TEXT_MAX, DEFAULT_RULES, DndAction

SECRET_FIELDS = ("microsoft.client_secret", "starface.password", "starface.bridge.secret")
SECRET_EXPIRY_WARNING_DAYS = 30
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Features that need the bridge (starface-bridge.md, tier 2); a REST-only tenant gets DND only.
BRIDGE_FEATURES = (
    "chat-status text in STARFACE",
    "telephony status 'on the phone' in the STARFACE app",
    "STARFACE calls -> Teams presence",
    "manual STARFACE DND -> Teams",
)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_INSTANCE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
# A value that stands for "the stored secret, unchanged" while a merged update is validated.
_KEEP_SECRET = "\x00stored-secret\x00"


class TenantConfigError(ValueError):
    """Raised when a tenant definition or change is invalid; `problems` holds (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{where}: {what}" if where else what for where, what in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True)


def _secret(value: SecretStr, what: str) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError(f"the {what} is empty; enter it")
    return value


def check_url(value: str) -> str:
    """An https base URL without credentials, path-trimmed; plain http only for a local simulator."""
    parts = urlsplit(value.strip())
    if parts.username or parts.password:
        raise ValueError("must not contain a user name or password; put credentials in their own fields")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"must be a URL like https://host[:port], got {value!r}")
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise ValueError(
            "must use https:// (plain http is only allowed for 127.0.0.1/localhost, e.g. a simulator), "
            f"got {value!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"must not carry a query or fragment, got {value!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"has an invalid port: {value!r}") from None
    return value.strip().rstrip("/")


#: A base URL field, checked by `check_url` (one validator for every URL setting).
BaseUrl = Annotated[str, AfterValidator(check_url)]


class Options(_Strict):
    """The outputs a tenant wants, each switchable (design.md, product 1 and 2)."""

    set_dnd: bool = True
    set_chat_text: bool = True
    set_telephony: bool = False
    set_teams_presence: bool = True
    teams_presence_mode: TeamsPresenceMode = TeamsPresenceMode.BUSY_IN_A_CALL
    ringing_counts_as_call: bool = False
    teams_leads: bool = False
    manual_dnd_to_teams: bool = False


class Selection(_Strict):
    """Which STARFACE users are synced, as in the STARFACE module."""

    mode: SelectionMode = SelectionMode.ALL_EXCEPT_LISTED
    starface_group_id: int | None = Field(default=None, ge=1)
    login_ids: list[str] = Field(default_factory=list)

    @field_validator("login_ids", mode="before")
    @classmethod
    def _split_and_dedupe(cls, value: Any) -> Any:
        if isinstance(value, str):  # the CLI passes "1001,1002"
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            cleaned = [str(item).strip() if isinstance(item, str | int) else item for item in value]
            if any(item == "" or not isinstance(item, str) for item in cleaned):
                raise ValueError("must be a list of STARFACE login ids like [\"1001\", \"1002\"]")
            return list(dict.fromkeys(cleaned))
        return value

    @model_validator(mode="after")
    def _group_mode_needs_group(self) -> Selection:
        if self.mode is SelectionMode.GROUP_PLUS_LISTED and self.starface_group_id is None:
            raise ValueError(
                "starface_group_id is required in mode group_plus_listed: give the id of the STARFACE group "
                "whose members are synced (or use mode all_except_listed)"
            )
        return self


class MicrosoftConfig(_Strict):
    """The customer's Entra app (application permissions Presence.ReadWrite.All, User.Read.All)."""

    directory_id: str
    client_id: str
    client_secret: SecretStr
    secret_expires_at: datetime | None = None
    login_base_url: BaseUrl = DEFAULT_LOGIN_BASE_URL
    graph_base_url: BaseUrl = DEFAULT_GRAPH_BASE_URL

    @field_validator("directory_id")
    @classmethod
    def _guid_or_domain(cls, value: str) -> str:
        if _GUID.match(value):
            return value.lower()
        if _DOMAIN.match(value.lower()):
            return value.lower()
        raise ValueError(
            "must be the directory (tenant) id, a GUID like 11111111-2222-3333-4444-555555555555, or a "
            "verified domain like contoso.onmicrosoft.com (Entra admin center > Overview > Tenant ID)"
        )

    @field_validator("client_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        if not _GUID.match(value):
            raise ValueError(
                "must be the app's Application (client) ID, a GUID (Entra admin center > App registrations > "
                "the app > Overview)"
            )
        return value.lower()

    @field_validator("client_secret")
    @classmethod
    def _secret_value_not_id(cls, value: SecretStr) -> SecretStr:
        _secret(value, "client secret")
        if _GUID.match(value.get_secret_value().strip()):
            raise ValueError(
                "this looks like the secret's ID (a GUID), not its value; copy the *Value* column from "
                "App registrations > Certificates & secrets (it is shown only once, right after creation)"
            )
        return value

    @field_validator("secret_expires_at", mode="before")
    @classmethod
    def _date_or_datetime(cls, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return datetime.combine(date.fromisoformat(value.strip()), time(), tzinfo=UTC)
        if isinstance(value, str) and value.strip().lower() in ("", "null", "none"):
            return None
        return value

    @field_validator("secret_expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class BridgeConfig(_Strict):
    """The bridge module instance in the customer's PBX (tier 2)."""

    instance: str = DEFAULT_BRIDGE_INSTANCE
    secret: SecretStr

    @field_validator("instance")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _INSTANCE.match(value):
            raise ValueError(
                "must be the bridge's module instance name as shown in the STARFACE admin interface "
                f"(letters, digits, '_'; default {DEFAULT_BRIDGE_INSTANCE})"
            )
        return value

    @field_validator("secret")
    @classmethod
    def _present(cls, value: SecretStr) -> SecretStr:
        return _secret(value, "bridge secret (the one configured in the module instance)")


class StarfaceConfig(_Strict):
    """The PBX: REST service account with admin rights, and optionally the bridge."""

    base_url: BaseUrl
    login_id: str = Field(min_length=1, max_length=100)
    password: SecretStr
    bridge: BridgeConfig | None = None

    @field_validator("password")
    @classmethod
    def _present(cls, value: SecretStr) -> SecretStr:
        return _secret(value, "STARFACE service account password")


class RuleOverride(_Strict):
    """One row of the rule table: what a Teams status does to STARFACE DND, and the chat text."""

    dnd: DndAction
    chat_text: str | None = None

    @field_validator("chat_text")
    @classmethod
    def _short_visible(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip() or len(value) > CHAT_TEXT_MAX:
            raise ValueError(f"must be 1..{CHAT_TEXT_MAX} visible characters, or null for no text")
        return value


def _category_error(name: object) -> str:
    return f"unknown category {name!r}; use one of {', '.join(c.value for c in Category)}"


def _find_category(name: object) -> Category | None:
    wanted = str(name).replace("_", "").replace("-", "").lower()
    return next((c for c in Category if c.value.lower() == wanted), None)


def parse_category(name: str) -> Category:
    """A rule-table category by name, case-insensitively ("inacall", "InACall", "in_a_call")."""
    category = _find_category(name)
    if category is None:
        raise TenantConfigError([("rules", _category_error(name))])
    return category


class TenantConfig(_Strict):
    """A whole tenant definition (see the module docstring)."""

    name: str
    description: str = ""
    enabled: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    options: Options = Field(default_factory=Options)
    selection: Selection = Field(default_factory=Selection)
    poll_interval_s: float = Field(default=DEFAULT_POLL_INTERVAL_S, ge=1, le=3600)
    microsoft: MicrosoftConfig
    starface: StarfaceConfig
    rules: dict[Category, RuleOverride] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _cli_friendly(cls, value: str) -> str:
        if not _NAME.match(value) or value.isdigit():
            raise ValueError(
                "must be 1..100 letters, digits, '.', '_' or '-', start with a letter or digit and not be "
                "all digits (a number means a tenant id on the command line), e.g. contoso-pbx1"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("rules", mode="before")
    @classmethod
    def _category_keys(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        unknown = [key for key in value if _find_category(key) is None]
        if unknown:
            raise ValueError(_category_error(unknown[0]))
        return {_find_category(key): row for key, row in value.items()}


# --- validation with readable errors ------------------------------------------------------------------

_HINTS = {
    "missing": "is required; add it",
    "extra_forbidden": "is not a known setting; check the spelling",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
}


def _problems(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        where = f"{prefix}.{where}" if prefix and where else (prefix or where)
        message = _HINTS.get(error["type"]) or error["msg"].removeprefix("Value error, ")
        problems.append((where, message))
    return problems


def validate_config(data: Mapping[str, Any]) -> TenantConfig:
    """Validates a tenant definition; raises TenantConfigError naming each bad field."""
    if not isinstance(data, Mapping):
        raise TenantConfigError([("", "a tenant definition must be a JSON object")])
    try:
        return TenantConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise TenantConfigError(_problems(exc)) from None


# --- storing ---------------------------------------------------------------------------------------------


def find_tenant(session: Session, name_or_id: str) -> Tenant | None:
    """A tenant by name, or by id when the argument is a number (names are never all digits)."""
    key = name_or_id.strip()
    if key.isdigit():
        return session.scalars(select(Tenant).where(or_(Tenant.id == int(key), Tenant.name == key))).first()
    return session.scalars(select(Tenant).where(Tenant.name == key)).first()


def _check_name_free(session: Session, name: str, own_id: int | None = None) -> None:
    other = session.scalars(select(Tenant.id).where(Tenant.name == name)).first()
    if other is not None and other != own_id:
        raise TenantConfigError([("name", f"a tenant named {name!r} exists already; choose another name")])


def _apply(tenant: Tenant, config: TenantConfig) -> None:
    """Copies every non-secret value of `config` onto the row."""
    options, selection, ms, sf = config.options, config.selection, config.microsoft, config.starface
    tenant.name, tenant.description = config.name, config.description
    tenant.enabled, tenant.log_level = config.enabled, config.log_level
    tenant.set_dnd, tenant.set_chat_text = options.set_dnd, options.set_chat_text
    tenant.set_telephony, tenant.set_teams_presence = options.set_telephony, options.set_teams_presence
    tenant.teams_presence_mode = options.teams_presence_mode.value
    tenant.ringing_counts_as_call, tenant.teams_leads = options.ringing_counts_as_call, options.teams_leads
    tenant.manual_dnd_to_teams = options.manual_dnd_to_teams
    tenant.selection_mode = selection.mode.value
    tenant.starface_group_id = selection.starface_group_id
    tenant.login_ids = list(selection.login_ids)
    tenant.poll_interval_s = config.poll_interval_s
    tenant.ms_directory_id, tenant.ms_client_id = ms.directory_id, ms.client_id
    tenant.ms_secret_expires_at = ms.secret_expires_at
    tenant.login_base_url, tenant.graph_base_url = ms.login_base_url, ms.graph_base_url
    tenant.starface_base_url, tenant.starface_login_id = sf.base_url, sf.login_id
    tenant.bridge_instance = sf.bridge.instance if sf.bridge else None


def _rule_rows(tenant: Tenant, overrides: Mapping[Category, RuleOverride]) -> None:
    """Makes the tenant's rule rows equal the defaults overlaid with `overrides`, one row per category."""
    rows = {row.category: row for row in tenant.rules}
    for category, default in DEFAULT_RULES.items():
        override = overrides.get(category)
        dnd = (override.dnd if override else default.dnd).value
        text = override.chat_text if override else default.chat_text
        row = rows.get(category.value)
        if row is None:
            tenant.rules.append(StatusRule(category=category.value, dnd_action=dnd, chat_text=text))
        else:
            row.dnd_action, row.chat_text = dnd, text


def create_tenant(session: Session, box: SecretBox, config: TenantConfig) -> Tenant:
    """Stores a new tenant: row, encrypted secrets, a rule row per category and an empty health row."""
    _check_name_free(session, config.name)
    tenant = Tenant()
    _apply(tenant, config)
    bridge = config.starface.bridge
    set_secrets(
        tenant,
        box,
        ms_client_secret=config.microsoft.client_secret.get_secret_value(),
        starface_password=config.starface.password.get_secret_value(),
        bridge_secret=bridge.secret.get_secret_value() if bridge else None,
    )
    _rule_rows(tenant, config.rules)
    tenant.health = TenantHealth()
    session.add(tenant)
    session.flush()
    return tenant


def _stored(tenant: Tenant, secret: Callable[[str | None], str]) -> dict[str, Any]:
    """The stored tenant in the config shape; `secret` says what to show for each encrypted secret."""
    bridge = None
    if tenant.bridge_instance:
        bridge = {"instance": tenant.bridge_instance, "secret": secret(tenant.bridge_secret_encrypted)}
    return {
        "name": tenant.name,
        "description": tenant.description,
        "enabled": tenant.enabled,
        "log_level": tenant.log_level,
        "options": {name: getattr(tenant, name) for name in Options.model_fields},
        "selection": {
            "mode": tenant.selection_mode,
            "starface_group_id": tenant.starface_group_id,
            "login_ids": list(tenant.login_ids or []),
        },
        "poll_interval_s": tenant.poll_interval_s,
        "microsoft": {
            "directory_id": tenant.ms_directory_id,
            "client_id": tenant.ms_client_id,
            "client_secret": secret(tenant.ms_client_secret_encrypted),
            "secret_expires_at": tenant.ms_secret_expires_at,
            "login_base_url": tenant.login_base_url,
            "graph_base_url": tenant.graph_base_url,
        },
        "starface": {
            "base_url": tenant.starface_base_url,
            "login_id": tenant.starface_login_id,
            "password": secret(tenant.starface_password_encrypted),
            "bridge": bridge,
        },
        "rules": {row.category: {"dnd": row.dnd_action, "chat_text": row.chat_text} for row in tenant.rules},
    }


def _current(tenant: Tenant) -> dict[str, Any]:
    """The stored tenant as a config dict; secrets are stand-ins meaning "keep the stored one"."""
    return _stored(tenant, lambda _ciphertext: _KEEP_SECRET)


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


def deep_merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` laid over it, nested objects merged key by key."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _given(changes: Mapping[str, Any], path: str) -> bool:
    node: Any = changes
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return node is not None


def _plain(value: Any) -> Any:
    """Comparable plain data: str keys, enum values; secrets (stand-ins or SecretStr) dropped."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, Mapping):
        return {
            str(key): _plain(item)
            for key, item in value.items()
            if not isinstance(item, SecretStr) and item != _KEEP_SECRET
        }
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _diff(before: Any, after: Any, prefix: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        return [name for key in keys for name in _diff(before.get(key), after.get(key), f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if before != after else []


def update_tenant(session: Session, box: SecretBox, tenant: Tenant, changes: Mapping[str, Any]) -> list[str]:
    """Applies a partial change (nested or dotted keys); returns the names of the changed settings.

    The stored tenant and the change are merged and validated as a whole first, so an invalid change
    raises TenantConfigError and leaves the row untouched. Secrets not in `changes` keep their stored
    (encrypted) value without being decrypted. `starface.bridge: null` removes the bridge (REST-only).
    """
    nested = nest(changes)
    before = _current(tenant)
    config = validate_config(deep_merge(before, nested))
    if config.name != tenant.name:
        _check_name_free(session, config.name, tenant.id)
    changed = set(_diff(_plain(before), _plain(config)))
    changed |= {path for path in SECRET_FIELDS if _given(nested, path)}
    _apply(tenant, config)
    bridge = config.starface.bridge
    bridge_secret = _new(bridge.secret.get_secret_value()) if bridge else None
    set_secrets(
        tenant,
        box,
        ms_client_secret=_new(config.microsoft.client_secret.get_secret_value()),
        starface_password=_new(config.starface.password.get_secret_value()),
        bridge_secret=bridge_secret,
        clear_bridge_secret=bridge is None,
    )
    _rule_rows(tenant, config.rules)
    session.flush()
    return sorted(changed)


def _new(secret: str) -> str | None:
    """None (= keep the stored secret) for the stand-in, else the new secret."""
    return None if secret == _KEEP_SECRET else secret


def set_rule(
    session: Session, tenant: Tenant, category: Category | str, dnd: DndAction | str, chat_text: str | None
) -> StatusRule:
    """Sets one row of the tenant's rule table (validated like the config's `rules`)."""
    cat = category if isinstance(category, Category) else parse_category(category)
    try:
        rule = RuleOverride.model_validate({"dnd": dnd, "chat_text": chat_text})
    except ValidationError as exc:
        raise TenantConfigError(_problems(exc, f"rules.{cat.value}")) from None
    row = next((r for r in tenant.rules if r.category == cat.value), None)
    if row is None:  # a tenant stored before this category existed
        row = StatusRule(category=cat.value)
        tenant.rules.append(row)
    row.dnd_action, row.chat_text = rule.dnd.value, rule.chat_text
    session.flush()
    return row


# --- reading back ----------------------------------------------------------------------------------------


def tier(tenant: Tenant) -> str:
    """"bridge" (tier 2) or "REST-only" (tier 1), see starface-bridge.md."""
    return "bridge" if tenant.has_bridge else "REST-only"


def secret_expiry_warning(expires_at: datetime | None, now: datetime | None = None) -> str | None:
    """A warning when the client secret expires within 30 days (or has expired), else None."""
    if expires_at is None:
        return None
    now = now or datetime.now(UTC)
    left = expires_at - now
    when = expires_at.date().isoformat()
    if left <= timedelta(0):
        return (
            f"the Microsoft client secret expired on {when}: create a new one under App registrations > "
            "Certificates & secrets and set it with `teamsconnect tenant set NAME microsoft.client_secret`"
        )
    if left < timedelta(days=SECRET_EXPIRY_WARNING_DAYS):
        return (
            f"the Microsoft client secret expires on {when} (in {left.days} days): create a new one and set "
            "it with `teamsconnect tenant set NAME microsoft.client_secret` before then"
        )
    return None


def tenant_summary(tenant: Tenant) -> dict[str, Any]:
    """The tenant's configuration without secrets (each shown as "set" / "not set"), its id and tier."""
    summary = _stored(tenant, lambda ciphertext: "set" if ciphertext else "not set")
    expires = tenant.ms_secret_expires_at
    summary["microsoft"]["secret_expires_at"] = expires.isoformat() if expires else None
    return {"id": tenant.id, **summary, "tier": tier(tenant)}
