"""A tenant definition as an operator writes it (JSON file, CLI flags, `key=value` changes), validated.

`TenantConfig` is the one shape every entry point goes through (tenants/service.py stores it). Every
problem is reported as `TenantConfigError` with one `field: what is wrong and how to fix it` line per
problem. Pydantic's own `str(ValidationError)` is never shown: it echoes input values, which may be secrets.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal, TypeVar, get_type_hints
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from config import SettingsError, get_settings
from connectors.egress import internal_reason
from models.tenant import (
    DEFAULT_BRIDGE_INSTANCE,
    DEFAULT_GRAPH_BASE_URL,
    DEFAULT_LOGIN_BASE_URL,
    DEFAULT_POLL_INTERVAL_S,
)
from presence.categories import Category, category_named, teams_name
from presence.linking import SelectionMode
from presence.policy import (
    CHAT_TEXT_MAX,
    DEFAULT_RULES,
    OPTION_FIELDS,
    ChatSymbol,
    DndAction,
    TenantPolicy,
)
from tenants.changes import KEEP_SECRET
from tenants.naming import check_slug, clean_name

#: A tenant's log levels, as in the STARFACE module (most to least severe); TRACE is below DEBUG.
LOG_LEVELS = ("ERROR", "WARN", "INFO", "DEBUG", "TRACE")
SECRET_FIELDS = ("microsoft.client_secret", "starface.password", "starface.bridge.secret")
# Size limits: what the columns hold (models/tenant.py) and what an operator can sensibly mean.
MAX_DESCRIPTION_CHARS = 2_000
MAX_LOGIN_IDS = 10_000
MAX_LOGIN_ID_CHARS = 100  # user_link.login_id, tenant.starface_login_id: VARCHAR(100)
MAX_DB_INTEGER = 2**31 - 1  # INTEGER columns (starface_group_id)
MAX_DIRECTORY_ID_CHARS = 100  # tenant.ms_directory_id: VARCHAR(100)
MAX_SECRET_CHARS = 1_000  # Entra secrets are 40 characters; a password or bridge secret of 1,000 is plenty
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_INSTANCE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")


class TenantConfigError(ValueError):
    """Raised when a tenant definition or change is invalid; `problems` holds (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{where}: {what}" if where else what for where, what in problems))


class _Strict(BaseModel):
    """Unknown keys are errors, strings are stripped, and no error ever echoes an input value."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True)


_Model = TypeVar("_Model", bound=_Strict)


def _secret(value: SecretStr, what: str) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError(f"the {what} is empty; enter it")
    if len(value.get_secret_value()) > MAX_SECRET_CHARS:
        raise ValueError(f"the {what} is longer than {MAX_SECRET_CHARS} characters; check that the file or "
                         "input holds only the secret")
    return value


#: The *_base_url columns are VARCHAR(255).
MAX_URL_CHARS = 255
#: Cloud metadata services: never a PBX or a Microsoft endpoint, whatever the settings allow.
_METADATA_HOSTS = frozenset({"169.254.169.254", "fd00:ec2::254", "100.100.100.200",
                             "metadata.google.internal", "metadata"})
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)


def _url_policy() -> tuple[bool, bool]:
    """(production mode, private addresses allowed) from the settings; unreadable settings: strictest."""
    try:
        settings = get_settings()
    except SettingsError:
        return True, False
    return settings.mode == "production", settings.allow_private_urls


def _address_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host name literally is, including legacy forms resolvers accept (127.1, 0x7f.1,
    2130706433); None for a real name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.match(host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _internal_host(host: str) -> str | None:
    """Why ``host`` is an internal address (loopback, private, link-local, ...), or None if it is public."""
    if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
        return "a local or internal name"
    address = _address_of(host)
    return None if address is None else internal_reason(address)


def _check_destination(host: str, scheme: str, value: str) -> None:
    """Production mode: https only (secrets and the UCI token travel with every request) and no internal
    addresses (server-side request forgery into our own network) unless TEAMSCONNECT_ALLOW_PRIVATE_URLS."""
    production, allow_private = _url_policy()
    if not production:
        return
    if host in _METADATA_HOSTS or _address_of(host) == ipaddress.ip_address("169.254.169.254"):
        raise ValueError("points at a cloud metadata service, never a PBX or Microsoft endpoint; "
                         "use the PBX's own https:// address")
    if scheme != "https":
        raise ValueError("must use https:// in production: plain http would send the STARFACE password, the "
                         f"UCI token and the bridge secret in clear text, got {value!r}")
    internal = _internal_host(host)
    if internal and not allow_private:
        raise ValueError(
            f"points at {internal} ({host}); in production tenant URLs must be public https:// addresses. "
            "For an on-prem PBX reached over a VPN set TEAMSCONNECT_ALLOW_PRIVATE_URLS=true"
        )


def check_url(value: str) -> str:
    """An https base URL without credentials, path-trimmed, at most 255 characters; plain http only for a
    local simulator in embedded mode; in production no internal addresses (see `_check_destination`)."""
    if len(value) > MAX_URL_CHARS:
        raise ValueError(f"is {len(value)} characters long; at most {MAX_URL_CHARS} are allowed")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in value.strip()):
        raise ValueError("must not contain spaces or control characters; give a URL like https://host[:port]")
    parts = urlsplit(value.strip())
    if parts.username or parts.password:
        raise ValueError("must not contain a user name or password; put credentials in their own fields")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"must be a URL like https://host[:port], got {value!r}")
    _check_destination(parts.hostname.rstrip(".").lower(), parts.scheme, value)
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


class _OptionsRules(_Strict):
    """Validation of the options beyond their types."""

    @model_validator(mode="before")
    @classmethod
    def _teams_leads_renamed(cls, value: Any) -> Any:
        """`teams_leads` (before issue 11) is `respect_manual_dnd` inverted; a file may still carry it."""
        if isinstance(value, Mapping) and "teams_leads" in value:
            value = dict(value)
            leads = value.pop("teams_leads")
            if not isinstance(leads, bool):
                raise ValueError("teams_leads: must be true or false (now respect_manual_dnd, inverted)")
            value.setdefault("respect_manual_dnd", not leads)
        return value


def _options_model() -> type[_OptionsRules]:
    """`Options`: the engine's options (presence.policy.OPTION_FIELDS of `TenantPolicy`) with the engine's
    types and defaults, so a new option or default is written once, in the engine."""
    hints = get_type_hints(TenantPolicy)
    defaults = {f.name: f.default for f in fields(TenantPolicy)}
    return create_model(  # type: ignore[no-any-return, call-overload]
        "Options", __base__=_OptionsRules, __module__=__name__,
        __doc__="The outputs a tenant wants, each switchable (design.md, product 1 and 2).",
        **{name: (hints[name], defaults[name]) for name in OPTION_FIELDS},
    )


Options = _options_model()



class Selection(_Strict):
    """Which STARFACE users are synced, as in the STARFACE module."""

    mode: SelectionMode = SelectionMode.ALL_EXCEPT_LISTED
    #: The group by its name (as under Admin > Groups) or id; a name is resolved on the PBX when saved.
    starface_group: str | None = Field(default=None, max_length=100)
    #: The resolved id (stored); may also be given directly, as before issue 11.
    starface_group_id: int | None = Field(default=None, ge=1, le=MAX_DB_INTEGER)
    login_ids: list[str] = Field(default_factory=list)

    @field_validator("starface_group", mode="before")
    @classmethod
    def _name_or_id(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value  # rejected as not a string
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str):
            value = " ".join(value.split())
            if value.isdigit() and int(value) < 1:
                raise ValueError("a group id is a positive number; or give the group's name")
            return value or None
        return value

    @field_validator("login_ids", mode="before")
    @classmethod
    def _split_and_dedupe(cls, value: Any) -> Any:
        if isinstance(value, str):  # the CLI passes "1001,1002"
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            if len(value) > MAX_LOGIN_IDS:
                raise ValueError(f"lists {len(value)} login ids; at most {MAX_LOGIN_IDS} are allowed "
                                 "(for more users use mode all_except_listed or a STARFACE group)")
            cleaned = [str(item).strip() if isinstance(item, str | int) else item for item in value]
            if any(item == "" or not isinstance(item, str) for item in cleaned):
                raise ValueError("must be a list of STARFACE login ids like [\"1001\", \"1002\"]")
            if any(len(item) > MAX_LOGIN_ID_CHARS for item in cleaned):
                raise ValueError(f"each login id must be at most {MAX_LOGIN_ID_CHARS} characters")
            return list(dict.fromkeys(cleaned))
        return value

    @model_validator(mode="after")
    def _group_mode_needs_group(self) -> Selection:
        if self.mode is SelectionMode.GROUP_PLUS_LISTED and self.starface_group is None \
                and self.starface_group_id is None:
            raise ValueError(
                "starface_group is required in mode group_plus_listed: give the name (as under Admin > "
                "Groups) or id of the STARFACE group whose members are synced (or use mode all_except_listed)"
            )
        return self


class MicrosoftConfig(_Strict):
    """The customer's directory and the Entra app we sign in with (application permissions
    Presence.ReadWrite.All, User.Read.All): the customer's own app (`app: own`, client id and secret, as in
    the STARFACE module) or the provider's multi-tenant app (`app: provider`: only the customer's admin
    consent, no id or secret here)."""

    app: Literal["own", "provider"] = "own"
    directory_id: str
    client_id: str | None = None
    client_secret: SecretStr | None = None
    secret_expires_at: datetime | None = None
    login_base_url: BaseUrl = DEFAULT_LOGIN_BASE_URL
    graph_base_url: BaseUrl = DEFAULT_GRAPH_BASE_URL

    @field_validator("directory_id")
    @classmethod
    def _guid_or_domain(cls, value: str) -> str:
        if len(value) > MAX_DIRECTORY_ID_CHARS:
            raise ValueError(f"must be at most {MAX_DIRECTORY_ID_CHARS} characters: the directory (tenant) "
                             "id GUID or a verified domain like contoso.onmicrosoft.com")
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
    def _guid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _GUID.match(value):
            raise ValueError(
                "must be the app's Application (client) ID, a GUID (Entra admin center > App registrations > "
                "the app > Overview)"
            )
        return value.lower()

    @field_validator("client_secret")
    @classmethod
    def _secret_value_not_id(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
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

    @model_validator(mode="after")
    def _own_app_needs_its_credentials(self) -> MicrosoftConfig:
        if self.app == "own":
            missing = [name for name in ("client_id", "client_secret") if getattr(self, name) is None]
            if missing:
                raise ValueError(
                    f"{' and '.join(missing)} required for the customer's own app (app: own): copy them from "
                    "Entra admin center > App registrations > the app; or use app: provider, for which the "
                    "customer's Global Administrator only gives admin consent"
                )
        return self


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


#: A rule row's chat symbol that leaves the user's symbol as it is.
KEEP_SYMBOL = "keep"
#: A rule row given without `chat_symbol` gets its category's default symbol.
DEFAULT_SYMBOL = "default"


class RuleOverride(_Strict):
    """One row of the rule table: what a Teams status does to STARFACE DND, the chat text and the chat
    symbol (AVAILABLE, AWAY, DO_NOT_DISTURB, EXTENDED_AWAY or keep; left out: the category's default)."""

    dnd: DndAction
    chat_text: str | None = None
    chat_symbol: str = DEFAULT_SYMBOL

    @field_validator("chat_symbol", mode="before")
    @classmethod
    def _symbol(cls, value: Any) -> Any:
        if value is None:
            return KEEP_SYMBOL
        if not isinstance(value, str):
            return value
        key = value.strip().upper().replace(" ", "_").replace("-", "_")
        if key in (KEEP_SYMBOL.upper(), DEFAULT_SYMBOL.upper()):
            return key.lower()
        if key not in ChatSymbol.__members__:
            allowed = ", ".join(member.value for member in ChatSymbol)
            raise ValueError(f"must be one of {allowed} or keep (leave the user's symbol), got {value!r}")
        return ChatSymbol[key].value

    def symbol_for(self, category: Category) -> ChatSymbol | None:
        """The symbol this row sets (None: keep), the category's default when none was given."""
        if self.chat_symbol == DEFAULT_SYMBOL:
            return DEFAULT_RULES[category].chat_symbol
        return None if self.chat_symbol == KEEP_SYMBOL else ChatSymbol(self.chat_symbol)

    @field_validator("chat_text")
    @classmethod
    def _short_visible(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip() or len(value) > CHAT_TEXT_MAX:
            raise ValueError(f"must be 1..{CHAT_TEXT_MAX} visible characters, or null for no text")
        return value


def _category_error(name: object) -> str:
    known = "; ".join(f"{c.value} ({teams_name(c)})" for c in Category)
    return f"unknown Teams status {name!r}; use a status name as Teams shows it, or a category: {known}"


def _find_category(name: object) -> Category | None:
    return category_named(str(name))


def parse_category(name: str) -> Category:
    """A rule-table category by name, case-insensitively ("inacall", "InACall", "in_a_call"), or by the
    name Teams users see, English or German ("Busy - In a call", "Beschäftigt - Am Telefon")."""
    category = _find_category(name)
    if category is None:
        raise TenantConfigError([("rules", _category_error(name))])
    return category


class TenantConfig(_Strict):
    """A whole tenant definition (see the module docstring)."""

    name: str
    #: Derived from the name when left out (tenants/naming.py); stays when the name changes.
    slug: str | None = None
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    enabled: bool = True
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG", "TRACE"] = "INFO"
    options: Options = Field(default_factory=Options)
    selection: Selection = Field(default_factory=Selection)
    poll_interval_s: float = Field(default=DEFAULT_POLL_INTERVAL_S, ge=1, le=3600)
    microsoft: MicrosoftConfig
    starface: StarfaceConfig
    rules: dict[Category, RuleOverride] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _instance_name(cls, value: str) -> str:
        return clean_name(value)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else check_slug(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _module_level(cls, value: Any) -> Any:
        """The STARFACE module's levels; WARNING (Python's name) is accepted as WARN."""
        if not isinstance(value, str):
            return value
        level = value.strip().upper()
        level = "WARN" if level == "WARNING" else level
        if level not in LOG_LEVELS:
            allowed = ", ".join(LOG_LEVELS)
            raise ValueError(f"must be one of {allowed} (as in the STARFACE module), got {value!r}")
        return level

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


def _nul_bytes(value: Any, where: str) -> list[str]:
    """The dotted paths of every string (value or key) in ``value`` that holds a NUL byte."""
    found: list[str] = []
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:  # iterative: a hostile definition may be nested deeper than the recursion limit
        item, path = stack.pop()
        if isinstance(item, SecretStr):
            item = item.get_secret_value()
        if isinstance(item, str):
            if "\x00" in item and item != KEEP_SECRET:  # the stand-in for a stored secret is no input
                found.append(path)
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                sub_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    found.append(sub_path.replace("\x00", "\\0"))
                stack.append((sub, sub_path))
        elif isinstance(item, list | tuple):
            stack.extend((sub, f"{path}.{n}") for n, sub in enumerate(item))
    return sorted(found)


def validate(model: type[_Model], data: Mapping[str, Any], prefix: str = "") -> _Model:
    """Validates ``data`` as ``model``; raises TenantConfigError naming each bad field under ``prefix``.

    A NUL byte in any string is refused first, for every field: PostgreSQL cannot store it."""
    nul = _nul_bytes(dict(data), prefix)
    if nul:
        raise TenantConfigError([(path, "contains a NUL byte (\\0); remove it (a file copied from a binary, "
                                        "or a UTF-16 file? save it as UTF-8 text)") for path in nul])
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise TenantConfigError(_problems(exc, prefix)) from None


def validate_config(data: Mapping[str, Any]) -> TenantConfig:
    """Validates a tenant definition; raises TenantConfigError naming each bad field."""
    if not isinstance(data, Mapping):
        raise TenantConfigError([("", "a tenant definition must be a JSON object")])
    return validate(TenantConfig, data)
