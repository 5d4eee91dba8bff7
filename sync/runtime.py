"""Per-process resources of a worker (or the web app): settings, database, secrets, coordination, clients.

Built lazily once per process and reset after a fork (Celery's prefork pool), so a child never shares a
parent's database or HTTP connections. Connector clients are cached per tenant and rebuilt when the
tenant row changes (``updated_at``), so MSAL's token cache and HTTP keep-alive work across short tasks.
Secrets are decrypted here, right before a client is built, and never leave the process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from config import Settings, get_settings
from connectors import egress
from connectors.graph import (
    CertificateCredential,
    GraphClient,
    GraphCredentialError,
    GraphHttp,
    PresenceReads,
    shared_graph_http,
)
from connectors.starface import StarfaceBridgeClient, StarfaceError, StarfaceRestClient
from models import Tenant
from models.crypto import SecretBox, box_from_settings
from models.db import make_engine, make_session_factory
from models.secrets import read_secrets
from sync.bridge_tenants import BridgeTenants
from sync.coordination import Coordination, LocalCoordination, RedisCoordination
from sync.settled import SettledUsers
from sync.tenant_policies import TenantPolicies
from tenants.provider_app import ProviderApp, ProviderAppMissing, provider_app

#: How long a worker keeps the tenants' log levels before reading them again.
LOG_LEVELS_TTL_S = 30.0
#: Connect and read timeout of every Redis call of ours. The webhook must answer within 1 s (bridge
#: contract), so a hung Redis has to fail fast (redis-py's default: no read timeout at all) and a timeout
#: is not retried within the request (that would double the wait); callers answer 503 / retry the task.
REDIS_TIMEOUT_S = 0.5
#: Workers are on no request path: a busy worker must not take a slow answer for an outage (a command
#: Redis applied but the client gave up on would be done twice by the task's retry).
WORKER_REDIS_TIMEOUT_S = 5.0
_redis_timeout_s = WORKER_REDIS_TIMEOUT_S


def use_request_path_timeouts() -> None:
    """Called by the web app before its runtime is built: its Redis calls then time out after 0.5 s."""
    global _redis_timeout_s
    _redis_timeout_s = REDIS_TIMEOUT_S


def redis_client(url: str, timeout_s: float = REDIS_TIMEOUT_S) -> redis.Redis:
    """A Redis client with short connect and socket timeouts. Only a dropped connection (a pooled socket
    the server closed, a restart) is retried, once and at once; a timeout is not."""
    return redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                                health_check_interval=30)


@dataclass
class Runtime:
    """Everything a task needs besides its arguments."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    box: SecretBox
    coordination: Coordination
    _clients: dict[tuple[str, int], tuple[Any, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _log_levels: dict[int, str] = field(default_factory=dict)
    _log_levels_read_at: float = -LOG_LEVELS_TTL_S
    _provider: ProviderApp | None = None
    #: The Graph and login connections of all tenants' GraphClients (built with the first of them).
    _graph_http: GraphHttp | None = None
    _provider_read: bool = False
    #: The Graph reads of packed polls, in flight together; their connections kept for the process's life
    #: (sync/poll.py).
    _presence_reads: PresenceReads | None = None
    #: The polls' remembered "nothing to write" answers in this process (sync/settled.py); None when the
    #: settings switch the memo off (settled_users_max = 0).
    settled: SettledUsers | None = field(init=False, default=None)
    #: The polled tenants with their policies, kept while their configuration is unchanged
    #: (sync/tenant_policies.py).
    tenant_policies: TenantPolicies = field(default_factory=TenantPolicies)
    #: The webhook receiver's tenants (enabled, bridge secret), kept for seconds (sync/bridge_tenants.py).
    bridge_tenants: BridgeTenants = field(default_factory=BridgeTenants)

    def __post_init__(self) -> None:
        if self.settings.settled_users_max:
            self.settled = SettledUsers(max_users=self.settings.settled_users_max)

    def log_level_of(self, tenant_id: int) -> str:
        """The tenant's log level; all tenants' levels are read in one query at most every 30 s."""
        now = time.monotonic()
        with self._lock:
            if now - self._log_levels_read_at >= LOG_LEVELS_TTL_S:
                with self.sessions() as session:
                    rows = session.execute(select(Tenant.id, Tenant.log_level))
                    self._log_levels = {tenant_id: level for tenant_id, level in rows}
                self._log_levels_read_at = now
            return self._log_levels.get(tenant_id, self.settings.log_level)

    @property
    def verify(self) -> str | bool:
        """CA bundle for outgoing HTTPS: the configured one (simulators' test CA) or the system's."""
        return self.settings.ca_bundle or True

    def _cached(self, kind: str, tenant: Tenant, fingerprint: tuple[object, ...], build):  # type: ignore[no-untyped-def]
        """The tenant's client of ``kind``, rebuilt only when what it was built from changed.

        The fingerprint holds the connection settings and the *encrypted* secrets (no plaintext is kept
        for comparison); never ``updated_at``, which every scheduler claim bumps and which would throw
        away MSAL's token cache on every poll.
        """
        key = (kind, tenant.id)
        with self._lock:
            entry = self._clients.get(key)
            if entry is not None and entry[0] == fingerprint:
                return entry[1]
            if entry is not None and hasattr(entry[1], "close"):
                entry[1].close()
            client = build()
            self._clients[key] = (fingerprint, client)
            return client

    def _plain_http(self, *urls: str) -> bool:
        """True if a URL is plain http outside embedded mode: secrets must never travel in clear text (the
        schema refuses such URLs in production; this also stops a tenant stored before that rule)."""
        return self.settings.mode != "embedded" and any(url.lower().startswith("http://") for url in urls)

    def _refuse_plain_http_pbx(self, tenant: Tenant) -> None:
        if self._plain_http(tenant.starface_base_url):
            raise StarfaceError("the tenant's STARFACE URL is plain http, which would send the password, the "
                                "UCI token and the bridge secret in clear text; set starface.base_url to https://")

    @property
    def provider_app(self) -> ProviderApp | None:
        """The provider's multi-tenant app from the settings (read once per process), or None."""
        with self._lock:
            if not self._provider_read:
                self._provider = provider_app(self.settings)
                self._provider_read = True
            return self._provider

    def graph(self, tenant: Tenant) -> GraphClient:
        """The tenant's Graph client (one MSAL app and one HTTP pool per tenant per process), signed in with
        the customer's own app or the provider's app (tenant.ms_app)."""
        if self._plain_http(tenant.login_base_url, tenant.graph_base_url):
            raise GraphCredentialError("the tenant's Microsoft login or Graph URL is plain http, which would "
                                       "send the client secret in clear text.",
                                       "set microsoft.login_base_url and graph_base_url to https:// URLs")
        if tenant.uses_provider_app:
            app = self.provider_app
            if app is None:
                raise ProviderAppMissing()
            client_id: str = app.client_id
            credential_id = app.fingerprint

            def credential() -> CertificateCredential | str:
                return app.credential
        else:
            client_id, credential_id = tenant.ms_client_id or "", tenant.ms_client_secret_encrypted or ""

            def credential() -> CertificateCredential | str:
                return read_secrets(tenant, self.box).ms_client_secret or ""

        def build() -> GraphClient:  # runs under self._lock (_cached)
            if self._graph_http is None:
                self._graph_http = shared_graph_http(self.verify)
            return GraphClient(
                tenant.ms_directory_id, client_id, credential(),
                login_base_url=tenant.login_base_url, graph_base_url=tenant.graph_base_url,
                verify=self.verify, http=self._graph_http,
            )

        fingerprint = (tenant.ms_directory_id, client_id, credential_id, tenant.login_base_url,
                       tenant.graph_base_url)
        return self._cached("graph", tenant, fingerprint, build)

    def starface(self, tenant: Tenant) -> StarfaceRestClient:
        """The tenant's STARFACE REST client (logs in lazily, re-logs in once on 401)."""
        self._refuse_plain_http_pbx(tenant)

        def build() -> StarfaceRestClient:
            secrets = read_secrets(tenant, self.box)
            return StarfaceRestClient(tenant.starface_base_url, tenant.starface_login_id,
                                      secrets.starface_password, verify=self.verify,
                                      connections=self.settings.starface_max_in_flight)

        fingerprint = (tenant.starface_base_url, tenant.starface_login_id, tenant.starface_password_encrypted)
        return self._cached("starface", tenant, fingerprint, build)

    def bridge(self, tenant: Tenant) -> StarfaceBridgeClient | None:
        """The tenant's bridge client, or None for a REST-only tenant (tier 1)."""
        if not tenant.has_bridge:
            return None
        self._refuse_plain_http_pbx(tenant)

        def build() -> StarfaceBridgeClient:
            secrets = read_secrets(tenant, self.box)
            return StarfaceBridgeClient(
                tenant.starface_base_url, tenant.starface_login_id, secrets.starface_password,
                instance=tenant.bridge_instance or "TeamsConnectBridge", secret=secrets.bridge_secret or "",
                verify=self.verify, connections=self.settings.starface_max_in_flight,
            )

        fingerprint = (tenant.starface_base_url, tenant.starface_login_id, tenant.starface_password_encrypted,
                       tenant.bridge_instance, tenant.bridge_secret_encrypted)
        return self._cached("bridge", tenant, fingerprint, build)

    def presence_reads(self, in_flight: int) -> PresenceReads:
        """The process's sender of concurrent presence reads (built on first use, after any fork), whose
        keep-alive connections serve every packed poll of the process."""
        with self._lock:
            if self._presence_reads is None:
                self._presence_reads = PresenceReads(self.verify, in_flight=in_flight)
            return self._presence_reads

    def close_clients(self) -> None:
        """Drops every cached client (and with it MSAL's token cache): the next call signs in anew."""
        with self._lock:
            for _, client in self._clients.values():
                if hasattr(client, "close"):
                    client.close()
            self._clients.clear()

    def close(self) -> None:
        self.close_clients()
        with self._lock:
            if self._graph_http is not None:
                self._graph_http.close()
                self._graph_http = None
            if self._presence_reads is not None:
                self._presence_reads.close()
                self._presence_reads = None
        self.engine.dispose()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def build_runtime(settings: Settings) -> Runtime:
    # A PBX's host name may lead into our own network, whatever it looked like when it was saved.
    egress.refuse_internal_addresses(settings.mode == "production" and not settings.allow_private_urls)
    engine = make_engine(settings.effective_database_url)
    coordination: Coordination
    if settings.redis_url:
        coordination = RedisCoordination(redis_client(settings.redis_url, _redis_timeout_s))
    else:
        coordination = LocalCoordination()
    return Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine),
                   box=box_from_settings(settings), coordination=coordination)


def get_runtime() -> Runtime:
    """This process's runtime, built on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = build_runtime(get_settings())
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Installs a runtime (the demo and in-process tests build their own), or forgets it."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None and runtime is not _runtime:
            _runtime.close()
        _runtime = runtime


def reset_after_fork() -> None:
    """Drops inherited connections in a forked child without closing the parent's sockets."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.engine.dispose(close=False)
        _runtime = None
