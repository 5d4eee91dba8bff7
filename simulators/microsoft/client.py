"""`MicrosoftSimControl`: the test-side client of the simulator's `/_sim/` control API (see `control.py`)."""

from __future__ import annotations

import ssl
from typing import Any

import httpx


class MicrosoftSimControl:
    def __init__(self, base_url: str, verify: str | bool = True, timeout: float = 10.0) -> None:
        context: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        self._http = httpx.Client(base_url=base_url, verify=context, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        response = self._http.request(method, path, json=body, params=params)
        if response.status_code >= 400:
            raise RuntimeError(
                f"simulator control {method} {path} failed: {response.status_code} {response.text}"
            )
        return response.json()

    # directory
    def add_tenant(self, tenant: dict[str, Any]) -> str:
        return self._call("POST", "/_sim/tenants", tenant)["id"]

    def add_app(self, tenant: str, app: dict[str, Any]) -> str:
        return self._call("POST", f"/_sim/tenants/{tenant}/apps", app)["id"]

    def add_user(self, tenant: str, user: dict[str, Any]) -> str:
        return self._call("POST", f"/_sim/tenants/{tenant}/users", user)["id"]

    def add_group(self, tenant: str, group: dict[str, Any]) -> str:
        return self._call("POST", f"/_sim/tenants/{tenant}/groups", group)["id"]

    def rotate_secret(
        self, tenant: str, app: str, secret: str, expires: str | None = None, replace: bool = True
    ) -> None:
        body: dict[str, Any] = {"secret": secret, "replace": replace}
        if expires:
            body["expires"] = expires
        self._call("POST", f"/_sim/tenants/{tenant}/apps/{app}/secrets", body)

    def expire_secrets(self, tenant: str, app: str) -> None:
        self._call("POST", f"/_sim/tenants/{tenant}/apps/{app}/expire-secrets", {})

    def set_consent(self, tenant: str, app: str, consented: bool) -> None:
        self._call("POST", f"/_sim/tenants/{tenant}/apps/{app}/consent", {"consented": consented})

    def set_roles(self, tenant: str, app: str, roles: list[str]) -> None:
        self._call("POST", f"/_sim/tenants/{tenant}/apps/{app}/roles", {"roles": roles})

    # the provider's multi-tenant application and its consent per customer tenant
    def add_application(
        self,
        client_id: str,
        *,
        redirect_uris: list[str],
        roles: list[str],
        certificates: list[str] | None = None,
        home_tenant: str | None = None,
        secret: str | None = None,
    ) -> str:
        body: dict[str, Any] = {
            "clientId": client_id,
            "redirectUris": redirect_uris,
            "roles": roles,
            "certificates": list(certificates or []),
        }
        if home_tenant:
            body["homeTenant"] = home_tenant
        if secret:
            body["secret"] = secret
        return self._call("POST", "/_sim/applications", body)["id"]

    def add_certificate(self, client_id: str, certificate_pem: str, replace: bool = False) -> dict[str, str]:
        """Register a certificate (public part only) on the application; returns its thumbprints."""
        return self._call(
            "POST",
            f"/_sim/applications/{client_id}/certificates",
            {"certificate": certificate_pem, "replace": replace},
        )

    def consent(self, client_id: str, tenant: str, action: str) -> dict[str, Any]:
        """grant, revoke, approve or refuse (what the administrator answers at the admin-consent link)."""
        return self._call(
            "POST", f"/_sim/applications/{client_id}/consent", {"tenant": tenant, "action": action}
        )

    def consent_state(self, client_id: str, tenant: str) -> dict[str, Any]:
        return self._call("GET", f"/_sim/applications/{client_id}/consent", params={"tenant": tenant})

    # a user's Teams clients
    def teams(self, user_id: str, action: str, client: str = "desktop", **extra: Any) -> dict[str, Any]:
        """Drive a Teams client: sign_in, call_start, calendar_start, status_set, oof_on, ... (control.py)."""
        return self._call(
            "POST", f"/_sim/users/{user_id}/teams", {"action": action, "client": client, **extra}
        )

    def presence(self, user_id: str) -> dict[str, Any]:
        return self._call("GET", f"/_sim/users/{user_id}/presence")

    # faults, clock, settings, log
    def add_fault(
        self,
        route: str,
        status: int | None = None,
        *,
        count: int = 1,
        retry_after: float | None = None,
        delay_s: float = 0.0,
        tenant: str | None = None,
    ) -> None:
        self._call(
            "POST",
            "/_sim/faults",
            {
                "route": route,
                "status": status,
                "count": count,
                "retryAfter": retry_after,
                "delaySeconds": delay_s,
                "tenant": tenant,
            },
        )

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sim/faults")

    def advance_clock(self, seconds: float) -> float:
        return self._call("POST", "/_sim/clock/advance", {"seconds": seconds})["now"]

    def configure(self, **settings: Any) -> None:
        """Settings by their control names: tokenLifetime, presenceLimit, fractionalRetryAfter, ..."""
        self._call("POST", "/_sim/config", settings)

    def requests(self, route: str | None = None, since: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"since": since}
        if route:
            params["route"] = route
        return self._call("GET", "/_sim/requests", params=params)

    def count(self, route: str) -> int:
        """How many requests the simulator answered on one route (e.g. "getPresencesByUserId", "token")."""
        return self.requests()["counts"].get(route, 0)

    def clear_requests(self) -> None:
        self._call("DELETE", "/_sim/requests")
