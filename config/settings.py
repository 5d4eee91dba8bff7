"""Settings of the service, read from environment variables with the prefix ``TEAMSCONNECT_``.

Two modes:

- ``embedded`` (default): runs on one machine without servers. SQLite file and an encryption key file in
  ``data_dir``, an in-process broker. The key file is created on first use and kept.
- ``production``: everything comes from the environment. A missing encryption key is a start-up error.

Every validation error names the environment variable to fix.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "TEAMSCONNECT_"
SUPPORTED_DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
SUPPORTED_BROKER_SCHEMES = ("memory", "redis", "rediss")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(Exception):
    """Raised at start-up when a setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    """All settings of one process. Read with :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    mode: Literal["embedded", "production"] = "embedded"
    data_dir: Path = Field(default=Path("data"), description="Folder for the SQLite file and the key file.")
    database_url: str = Field(default="", description="SQLAlchemy URL; default: SQLite in data_dir.")
    broker_url: str = Field(default="memory://", description="Celery broker; default: in-process.")
    redis_url: str = Field(default="", description="Redis for throttle blocks, rate budget, event ids.")
    encryption_keys: str = Field(
        default="", description="Comma-separated Fernet keys, newest first. Newest encrypts, all decrypt."
    )
    log_level: str = "INFO"
    ca_bundle: str = Field(default="", description="Extra CA bundle for outgoing HTTPS (simulators).")
    public_url: str = Field(default="http://127.0.0.1:8000", description="Base URL of the web app.")
    # The provider's ONE multi-tenant Entra application (README "Onboarding by admin consent"): customers
    # whose tenant uses it only give admin consent. A certificate (PEM text or a file path) is preferred;
    # a client secret is the fallback. The private key and the secret are SecretStr: never in a repr.
    provider_client_id: str = Field(default="", description="Application (client) id of the provider app.")
    provider_certificate: str = Field(default="", description="The app's certificate: PEM, or a PEM file.")
    provider_private_key: SecretStr = Field(default=SecretStr(""), description="Its key: PEM or a file.")
    provider_client_secret: SecretStr = Field(default=SecretStr(""), description="Fallback credential.")
    egress_ips: str = Field(
        default="", description="Comma-separated IP addresses / CIDR ranges the service connects to "
        "Microsoft and the PBXs from; shown to customers for Conditional Access and PBX firewalls.",
    )

    @field_validator("egress_ips")
    @classmethod
    def _ip_list(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR range, e.g. 203.0.113.10, "
                                 "198.51.100.0/28") from None
        return ", ".join(items)

    @property
    def egress_ip_list(self) -> list[str]:
        """The configured egress addresses; empty when the operator has not published them."""
        return [item for item in self.egress_ips.split(", ") if item]
    starface_max_in_flight: int = Field(
        default=4, ge=1, description="Requests in flight to one STARFACE at most, over all workers."
    )
    starface_max_per_s: float = Field(
        default=20.0, gt=0, description="Requests per second to one STARFACE at most, over all workers."
    )
    settled_users_max: int = Field(
        default=100_000, ge=0,
        description="Users per worker process whose unchanged \"nothing to write\" the poll remembers, so "
        "it does not read and decide them again (about 500 bytes each; 0 switches the memo off).",
    )
    flower_poll_tasks: bool = Field(
        default=False,
        description="Send Flower the task events of every poll task too. Off by default: with a poll per "
        "tenant every few seconds they would be most of the workers' event traffic and push the updates, "
        "calls and maintenance out of Flower's task list.",
    )
    allow_private_urls: bool = Field(
        default=False,
        description="Production: let tenant URLs point at loopback, private and link-local addresses "
        "(an on-prem PBX behind a VPN). Cloud metadata addresses stay refused; https stays required.",
    )

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
        return level

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value:
            return value
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in SUPPORTED_DATABASE_SCHEMES:
            raise ValueError(
                f"unknown database scheme {scheme or '(none)'!r}; use sqlite:///path or "
                "postgresql+psycopg://user@host/db"
            )
        if scheme == "postgresql":
            # psycopg 3 is the driver we ship; plain postgresql:// would make SQLAlchemy look for psycopg2.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("broker_url")
    @classmethod
    def _supported_broker(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in SUPPORTED_BROKER_SCHEMES:
            raise ValueError(f"unknown broker scheme {scheme or '(none)'!r}; use memory:// or redis://host:6379/0")
        return value

    @model_validator(mode="after")
    def _production_needs_servers_and_keys(self) -> Settings:
        if self.mode == "production":
            missing = []
            if not self.encryption_keys.strip():
                missing.append(f"{ENV_PREFIX}ENCRYPTION_KEYS (generate one: teamsconnect keys generate)")
            if not self.database_url:
                missing.append(f"{ENV_PREFIX}DATABASE_URL")
            if not self.redis_url:
                # Without it each process would keep its own Graph budget, throttle blocks and event ids.
                missing.append(f"{ENV_PREFIX}REDIS_URL (shared by all workers, e.g. redis://redis:6379/1)")
            if self.broker_url.startswith("memory://"):
                missing.append(f"{ENV_PREFIX}BROKER_URL (memory:// is one process only; use redis://...)")
            if missing:
                raise ValueError("production mode needs " + " and ".join(missing))
        return self

    @model_validator(mode="after")
    def _provider_app_complete(self) -> Settings:
        has_certificate = bool(self.provider_certificate.strip())
        has_key = bool(self.provider_private_key.get_secret_value().strip())
        if has_certificate != has_key:
            raise ValueError(
                f"{ENV_PREFIX}PROVIDER_CERTIFICATE and {ENV_PREFIX}PROVIDER_PRIVATE_KEY go together: set "
                "both (the PEM certificate registered on the app and its private key) or neither"
            )
        has_secret = bool(self.provider_client_secret.get_secret_value().strip())
        if (has_certificate or has_secret) and not self.provider_client_id.strip():
            raise ValueError(f"{ENV_PREFIX}PROVIDER_CLIENT_ID is required with a provider app credential")
        return self

    @property
    def provider_app_configured(self) -> bool:
        """True when the provider's multi-tenant app has a client id and a credential."""
        return bool(self.provider_client_id.strip()) and bool(
            self.provider_certificate.strip() or self.provider_client_secret.get_secret_value().strip()
        )

    @property
    def effective_database_url(self) -> str:
        """The database URL in use: the configured one, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'teamsconnect.db').resolve()}"

    @property
    def key_file(self) -> Path:
        """Where the embedded mode keeps its generated encryption key."""
        return self.data_dir / "encryption.key"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Reads and validates settings; raises :class:`SettingsError` naming each bad variable."""
    env = dict(os.environ if environ is None else environ)
    values = {k[len(ENV_PREFIX):].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    try:
        return Settings(_env_file=None, **values) if environ is not None else Settings(_env_file=None)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{ENV_PREFIX}{field.upper()}: {message}" if field else message)
        raise SettingsError("bad settings: " + "; ".join(problems)) from None


@functools.cache
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return load_settings()
