"""The simulated directory (tenants, app registrations, users, groups) and the simulator's
cross-cutting state: virtual clock, settings, request log, fault injection and throttle buckets.

The seed format is the one in issue 3 (see `load_seed`); the control API and the tests build on it.
"""

from __future__ import annotations

import collections
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators.microsoft.presence import UserPresence
from simulators.microsoft.user_schema import BY_LOWER, USER_PROPERTIES, default_value

LOGIN_ROUTES = frozenset({"token", "openid", "discovery", "adminconsent"})


class SimInputError(ValueError):
    """Raised when a seed or control-API payload is malformed."""


class Clock:
    """Virtual wall clock: real time plus an offset that `/_sim/clock/advance` moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise SimInputError("the clock only moves forward")
        self.offset += seconds


@dataclass
class Secret:
    value: str
    expires_at: float


@dataclass
class App:
    """An app registration consented in one tenant, with its application roles there."""

    client_id: str
    secrets: list[Secret]
    roles: list[str]
    consented: bool = True


@dataclass
class KeyCredential:
    """A certificate registered on an application ("Certificates & secrets" > Certificates)."""

    sha1: str  # upper-case hex, as the portal shows the thumbprint
    sha256: str
    public_key: Any
    not_before: float
    not_after: float

    @classmethod
    def from_pem(cls, pem: str) -> KeyCredential:
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except ValueError as exc:
            raise SimInputError("certificate must be one PEM-encoded X.509 certificate") from exc
        if not isinstance(cert.public_key(), rsa.RSAPublicKey):
            raise SimInputError("Entra accepts RSA certificates for client assertions only")
        return cls(
            sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - x5t is SHA-1 by definition
            sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
            public_key=cert.public_key(),
            not_before=cert.not_valid_before_utc.timestamp(),
            not_after=cert.not_valid_after_utc.timestamp(),
        )


@dataclass
class Application:
    """A multi-tenant app registration (the provider's): its credentials live here, in its home tenant.
    In a customer tenant it exists only as a service principal (`Tenant.apps[client_id]`), created by
    admin consent; `decisions` says what each tenant's administrator answers at the consent link."""

    client_id: str
    home_tenant: str | None
    redirect_uris: list[str]
    roles: list[str]
    secrets: list[Secret] = field(default_factory=list)
    certificates: list[KeyCredential] = field(default_factory=list)
    decisions: dict[str, str] = field(default_factory=dict)  # tenant id -> "approve" | "refuse"


CONSENT_ACTIONS = ("grant", "revoke", "approve", "refuse")


@dataclass
class User:
    id: str
    tenant_id: str
    mail: str | None
    user_principal_name: str
    display_name: str
    proxy_addresses: list[str]
    presence: UserPresence
    # Any other property of the v1.0 user type the seed sets (department, city, accountEnabled, ...).
    extra: dict[str, Any] = field(default_factory=dict)

    def resource(self) -> dict[str, Any]:
        """Every property of the v1.0 user type (user_schema), as Graph would hold it."""
        resource = {name: default_value(name) for name in USER_PROPERTIES}
        resource.update(self.extra)
        resource.update(
            {
                "id": self.id,
                "displayName": self.display_name,
                "mail": self.mail,
                "userPrincipalName": self.user_principal_name,
                "proxyAddresses": list(self.proxy_addresses),
            }
        )
        return resource


@dataclass
class Group:
    id: str
    display_name: str
    members: list[str]


@dataclass
class Tenant:
    id: str
    domain: str
    apps: dict[str, App] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    # (property, lower-cased value) -> positions of users in directory order; rebuilt when users were added
    # (users are never changed or removed), so a look-up never tests every user as a filter would.
    _index: dict[tuple[str, str], list[int]] = field(default_factory=dict, repr=False)
    _ordered: list[User] = field(default_factory=list, repr=False)

    def users_with(self, terms: list[tuple[str, str]]) -> list[User]:
        """The users with any of the (property, value) terms - id, mail, userPrincipalName, displayName or
        one of the proxyAddresses; values compared case-insensitively - in directory order."""
        if len(self._ordered) != len(self.users):
            self._ordered = list(self.users.values())
            self._index = {}
            for position, user in enumerate(self._ordered):
                values = [("id", user.id), ("mail", user.mail or ""),
                          ("userPrincipalName", user.user_principal_name), ("displayName", user.display_name)]
                values += [("proxyAddresses", address) for address in user.proxy_addresses]
                for name, text in dict.fromkeys((name, text.lower()) for name, text in values):
                    self._index.setdefault((name, text), []).append(position)
        positions = sorted({p for key, value in terms for p in self._index.get((key, value.lower()), [])})
        return [self._ordered[p] for p in positions]


@dataclass
class Settings:
    """Knobs settable at start or through `POST /_sim/config`."""

    token_lifetime_s: int = 3599
    presence_limit: int = 1500
    presence_window_s: float = 30.0
    retry_after_format: str = "mixed"  # integer | fractional | mixed (real Graph sends both, S16)
    batch_throttle_status: int = 200  # outer $batch status when an item is throttled: 200 | 424 | 429
    reject_reused_assertions: bool = False  # see docs/entra-consent.md: MSAL reuses an assertion ~9 min
    unknown_presence_ids: str = "omit"  # omit | unknown | error
    shuffle_batch: bool = True
    camel_case_presence: bool = False


@dataclass
class Fault:
    """Injected failure for one route (or "*"), optionally one tenant, for `count` requests."""

    route: str
    status: int | None
    delay_s: float
    count: int
    retry_after: float | None
    tenant_id: str | None


def parse_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError) as exc:
        raise SimInputError(f"not an ISO-8601 date-time: {text!r}") from exc


def _require(item: dict[str, Any], key: str) -> Any:
    if key not in item:
        raise SimInputError(f"missing field {key!r}")
    return item[key]


_SEED_ONLY_KEYS = frozenset({"id", "mail", "userPrincipalName", "displayName", "proxyAddresses"})


def _user_properties(item: dict[str, Any]) -> dict[str, Any]:
    """The seed's other user properties, by their declared name; an unknown name is a seed error."""
    extra = {}
    for key, value in item.items():
        if key in _SEED_ONLY_KEYS:
            continue
        name = BY_LOWER.get(key.lower())
        if name is None:
            raise SimInputError(f"user property {key!r} is not a property of the v1.0 user type")
        extra[name] = value
    return extra


class Directory:
    """All tenants, indexed for the lookups the login and Graph routes make."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self._by_domain: dict[str, str] = {}
        self.users: dict[str, User] = {}  # all tenants, by object id
        self.applications: dict[str, Application] = {}  # multi-tenant app registrations, by client id

    def resolve_tenant(self, name: str) -> Tenant | None:
        """A tenant by GUID or verified domain, case-insensitively (login accepts both)."""
        key = name.lower()
        return self.tenants.get(key) or self.tenants.get(self._by_domain.get(key, ""))

    def add_tenant(self, item: dict[str, Any]) -> Tenant:
        tenant_id = str(item.get("id") or uuid.uuid4()).lower()
        domain = str(_require(item, "domain")).lower()
        if tenant_id in self.tenants or domain in self._by_domain:
            raise SimInputError(f"tenant {tenant_id} / {domain} exists already")
        tenant = Tenant(id=tenant_id, domain=domain)
        self.tenants[tenant_id] = tenant
        self._by_domain[domain] = tenant_id
        for app in item.get("apps", []):
            self.add_app(tenant, app)
        for user in item.get("users", []):
            self.add_user(tenant, user)
        for group in item.get("groups", []):
            self.add_group(tenant, group)
        return tenant

    def add_app(self, tenant: Tenant, item: dict[str, Any]) -> App:
        client_id = str(_require(item, "clientId")).lower()
        secret = Secret(
            str(_require(item, "secret")), parse_time(item.get("secretExpires", "2099-01-01T00:00:00Z"))
        )
        app = App(
            client_id=client_id,
            secrets=[secret],
            roles=list(item.get("roles", [])),
            consented=bool(item.get("consented", True)),
        )
        tenant.apps[client_id] = app
        return app

    def add_application(self, item: dict[str, Any]) -> Application:
        client_id = str(_require(item, "clientId")).lower()
        if client_id in self.applications:
            raise SimInputError(f"application {client_id} exists already")
        home = item.get("homeTenant")
        if home is not None and self.resolve_tenant(str(home)) is None:
            raise SimInputError(f"unknown home tenant {home}")
        uris = item.get("redirectUris", [])
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise SimInputError("redirectUris must be a list of strings")
        application = Application(
            client_id=client_id,
            home_tenant=str(home).lower() if home else None,
            redirect_uris=list(uris),
            roles=[str(r) for r in item.get("roles", [])],
            secrets=[
                Secret(str(item["secret"]), parse_time(item.get("secretExpires", "2099-01-01T00:00:00Z")))
            ]
            if item.get("secret")
            else [],
            certificates=[KeyCredential.from_pem(str(pem)) for pem in item.get("certificates", [])],
        )
        self.applications[client_id] = application
        return application

    def set_consent(self, application: Application, tenant: Tenant, action: str) -> None:
        """grant: admin consent exists now (a service principal with the app's roles); revoke: the
        customer deleted it; approve / refuse: what the administrator answers at the consent link."""
        if action == "grant":
            tenant.apps[application.client_id] = App(application.client_id, [], list(application.roles))
        elif action == "revoke":
            tenant.apps.pop(application.client_id, None)
        elif action in ("approve", "refuse"):
            application.decisions[tenant.id] = action
        else:
            raise SimInputError(f"consent action must be one of {', '.join(CONSENT_ACTIONS)}")

    def add_user(self, tenant: Tenant, item: dict[str, Any]) -> User:
        user_id = str(item.get("id") or uuid.uuid4()).lower()
        if user_id in self.users:
            raise SimInputError(f"user {user_id} exists already")
        user = User(
            id=user_id,
            tenant_id=tenant.id,
            mail=item.get("mail"),
            user_principal_name=str(_require(item, "userPrincipalName")),
            display_name=str(item.get("displayName", "")),
            proxy_addresses=list(item.get("proxyAddresses", [])),
            presence=UserPresence(user_id),
            extra=_user_properties(item),
        )
        tenant.users[user_id] = user
        self.users[user_id] = user
        return user

    def add_group(self, tenant: Tenant, item: dict[str, Any]) -> Group:
        group_id = str(item.get("id") or uuid.uuid4()).lower()
        members = [str(m).lower() for m in item.get("members", [])]
        group = Group(id=group_id, display_name=str(item.get("displayName", "")), members=members)
        tenant.groups[group_id] = group
        return group


def load_seed(directory: Directory, seed: dict[str, Any]) -> None:
    """Fill `directory` from the issue-3 seed shape: {"tenants": [{id, domain, apps, users, groups}]},
    optionally with "applications": [{clientId, redirectUris, roles, certificates, consentedTenants}]
    (multi-tenant apps, consented in the listed tenants)."""
    if not isinstance(seed, dict) or not isinstance(seed.get("tenants", []), list):
        raise SimInputError('seed must be {"tenants": [...]}')
    for tenant in seed.get("tenants", []):
        directory.add_tenant(tenant)
    for item in seed.get("applications", []):
        application = directory.add_application(item)
        for name in item.get("consentedTenants", []):
            tenant = directory.resolve_tenant(str(name))
            if tenant is None:
                raise SimInputError(f"application {application.client_id}: unknown consented tenant {name}")
            directory.set_consent(application, tenant, "grant")


class RequestLog:
    """Every request the simulator answered, with per-route counters that are never truncated."""

    def __init__(self, keep: int = 100_000) -> None:
        self.entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self.counts: collections.Counter[str] = collections.Counter()
        self.total = 0

    def add(self, entry: dict[str, Any]) -> None:
        self.total += 1
        entry["seq"] = self.total
        self.entries.append(entry)
        self.counts[entry["route"]] += 1

    def clear(self) -> None:
        self.entries.clear()
        self.counts.clear()


class TokenBucket:
    """Presence limit per (app, tenant): `limit` requests per `window` seconds, refilled continuously.

    Requests made while throttled still take a token, so retrying early prolongs the throttling (S16).
    """

    def __init__(self, limit: int, window_s: float, now: float) -> None:
        self.capacity = float(limit)
        self.rate = limit / window_s
        self.tokens = float(limit)
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token; return 0 when allowed, else the seconds until a request would pass."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens = max(self.tokens - 1.0, -self.capacity)
        if self.tokens >= 0:
            return 0.0
        return (1.0 - self.tokens) / self.rate


RETRY_AFTER_FORMATS = ("integer", "fractional", "mixed")


def retry_after_header(seconds: float, fractional: bool) -> str:
    """Retry-After as Graph writes it: whole seconds (rounded up, at least 1) or seconds with a fraction."""
    if fractional:
        return f"{math.ceil(seconds * 1000) / 1000:.3f}"
    return str(max(1, math.ceil(seconds)))


class SimState:
    """Everything one simulator instance holds; guarded by one lock (requests are handled serially)."""

    def __init__(self, settings: Settings) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.settings = settings
        self.directory = Directory()
        self.log = RequestLog()
        self.faults: list[Fault] = []
        self.buckets: dict[tuple[str, str], TokenBucket] = {}
        self.skiptokens: dict[str, tuple[str, int]] = {}  # opaque paging token -> (tenant id, offset)
        self.retry_afters_sent = 0
        self.used_assertions: dict[tuple[str, str], float] = {}  # (client id, jti) -> exp

    def retry_after(self, seconds: float) -> str:
        """The Retry-After header for a wait, in the configured format; "mixed" alternates integer and
        fractional values, starting with an integer one, so every client meets both."""
        self.retry_afters_sent += 1
        mode = self.settings.retry_after_format
        fractional = mode == "fractional" or (mode == "mixed" and self.retry_afters_sent % 2 == 0)
        return retry_after_header(seconds, fractional)

    def take_presence_token(self, app_id: str, tenant_id: str) -> float:
        now = self.clock.now()
        bucket = self.buckets.get((app_id, tenant_id))
        if bucket is None:
            bucket = TokenBucket(self.settings.presence_limit, self.settings.presence_window_s, now)
            self.buckets[(app_id, tenant_id)] = bucket
        return bucket.take(now)

    def match_fault(self, route: str, tenant_id: str | None) -> Fault | None:
        for fault in self.faults:
            wildcard = fault.route == "*" and route not in LOGIN_ROUTES
            if (fault.route == route or wildcard) and fault.tenant_id in (None, tenant_id):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None
