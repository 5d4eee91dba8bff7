"""Settings only the web app reads (the shared ones live in config/settings.py).

``TEAMSCONNECT_ADMIN_TOKEN`` protects ``/api/*``; ``TEAMSCONNECT_METRICS_TOKEN`` protects ``/metrics``
(it lists every customer's name, id and counters). Each is a bearer token of at least 32 characters.
Unset, its endpoints are switched off (503) rather than open: an operator must choose a token before
tenant configuration, health or metrics become readable. A shorter token is refused at start-up.
"""

from __future__ import annotations

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config import SettingsError

ADMIN_TOKEN_ENV = "TEAMSCONNECT_ADMIN_TOKEN"
METRICS_TOKEN_ENV = "TEAMSCONNECT_METRICS_TOKEN"
MIN_TOKEN_CHARS = 32
GENERATE_TOKEN = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


class WebSettings(BaseSettings):
    """The web app's own settings; tokens are ``SecretStr`` so reprs and logs show ``**********``."""

    model_config = SettingsConfigDict(env_prefix="TEAMSCONNECT_", extra="ignore", hide_input_in_errors=True)

    admin_token: SecretStr = SecretStr("")
    metrics_token: SecretStr = SecretStr("")

    @field_validator("admin_token", "metrics_token")
    @classmethod
    def _strip_and_long_enough(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if token and len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"is {len(token)} characters long; use at least {MIN_TOKEN_CHARS} random characters "
                f"(generate one with: {GENERATE_TOKEN}), or leave it unset to switch its endpoints off"
            )
        return SecretStr(token)

    @property
    def admin_enabled(self) -> bool:
        return bool(self.admin_token.get_secret_value())

    @property
    def metrics_enabled(self) -> bool:
        return bool(self.metrics_token.get_secret_value())


def load_web_settings() -> WebSettings:
    """The web settings from the environment; raises SettingsError naming each bad variable (no value)."""
    try:
        return WebSettings()
    except ValidationError as exc:
        problems = [
            f"TEAMSCONNECT_{'.'.join(map(str, error['loc'])).upper()}: "
            + error["msg"].removeprefix("Value error, ")
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise SettingsError("bad settings: " + "; ".join(problems)) from None
