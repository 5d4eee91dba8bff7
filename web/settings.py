"""Settings only the web app reads (the shared ones live in config/settings.py).

``TEAMSCONNECT_ADMIN_TOKEN`` protects ``/api/*``. Unset, the admin API is switched off (503) rather than
open: an operator must choose a token before tenant configuration and health become readable.
"""

from __future__ import annotations

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ADMIN_TOKEN_ENV = "TEAMSCONNECT_ADMIN_TOKEN"


class WebSettings(BaseSettings):
    """The web app's own settings; the token is a ``SecretStr`` so reprs and logs show ``**********``."""

    model_config = SettingsConfigDict(env_prefix="TEAMSCONNECT_", extra="ignore")

    admin_token: SecretStr = SecretStr("")

    @field_validator("admin_token")
    @classmethod
    def _strip(cls, value: SecretStr) -> SecretStr:
        return SecretStr(value.get_secret_value().strip())

    @property
    def admin_enabled(self) -> bool:
        return bool(self.admin_token.get_secret_value())
