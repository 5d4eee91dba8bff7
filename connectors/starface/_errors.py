"""Errors of the STARFACE connector. No httpx, xmlrpc or pydantic exception leaves the connector.

    StarfaceError                    base; `permanent` says whether retrying can help
    ├── StarfaceLoginFailed          REST login or UCI token rejected (permanent)
    ├── StarfaceForbidden            the service account lacks a right (permanent)
    ├── StarfaceWriteFailed          a write got another answer than its documented success status
    ├── StarfaceNotFound             the addressed user/group does not exist (permanent)
    ├── StarfaceUnavailable          5xx, timeout, connection failure (transient)
    ├── StarfaceAddressRefused       the PBX's name resolves to an internal address (permanent)
    ├── StarfaceProtocolError        an answer we cannot understand (permanent)
    ├── BridgeError                  the bridge module answered with a fault
    │   ├── BridgeSecretRejected     fault 401 (permanent)
    │   ├── BridgeUnknownAccount     fault 404 (permanent)
    │   ├── BridgeNotInstalled       no such entry point on the PBX (permanent)
    │   └── BridgePbxError           fault 500 (transient)
    ├── WebhookRejected              an inbound webhook fails verification (answer 401)
    └── WebhookReplayed              an inbound webhook's eventId was already accepted (answer 202, skip)

Messages say what is wrong and how to fix it. They never contain a password, bridge secret, token or a
URL carrying the UCI token.
"""

from __future__ import annotations

from connectors.egress import InternalAddressRefused


class StarfaceError(Exception):
    """Base of every error raised by `connectors.starface`."""

    permanent: bool = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StarfaceLoginFailed(StarfaceError):
    """Raised when the PBX rejects the service account's login id / password (REST login or UCI token)."""


class StarfaceForbidden(StarfaceError):
    """Raised when the service account lacks the Administrator permission: a 403, or a 401 that a fresh
    login does not cure while the same token still reads `/rest/users/me`."""


class StarfaceWriteFailed(StarfaceError):
    """Raised when a write gets any answer but its documented success status, so it may not be applied.

    `permanent` is False for the answers documented as "Unexpected error" (200 to PUT phoneconfig, 5xx):
    the same write can succeed later. It is True for answers no retry can change (a redirect, an
    undocumented 2xx). `status` is the HTTP status the PBX answered.
    """

    def __init__(self, message: str, status: int, *, permanent: bool) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent


class StarfaceNotFound(StarfaceError):
    """Raised on 404 for a user or group id the PBX does not know (any more)."""


class StarfaceUnavailable(StarfaceError):
    """Raised when the PBX cannot be reached, times out or answers 5xx; retry later."""

    permanent = False


class StarfaceAddressRefused(StarfaceError):
    """Raised when the PBX's host name resolves to an internal address and the service refuses to connect
    there (connectors/egress.py); nothing was sent."""


class StarfaceProtocolError(StarfaceError):
    """Raised when the PBX answers something the contract or the REST schema does not allow."""


class BridgeError(StarfaceError):
    """Base of the bridge module's faults; `fault_code` is the XML-RPC faultCode."""

    def __init__(self, message: str, fault_code: int | None = None) -> None:
        super().__init__(message)
        self.fault_code = fault_code


class BridgeSecretRejected(BridgeError):
    """Raised on fault 401: the tenant's bridge secret differs from the module instance's."""


class BridgeUnknownAccount(BridgeError):
    """Raised on fault 404: the bridge does not know the STARFACE account id."""


class BridgeNotInstalled(BridgeError):
    """Raised when the PBX has no module instance with the configured name (unknown XML-RPC method)."""


class BridgePbxError(BridgeError):
    """Raised on fault 500: the bridge hit an error inside the PBX; retry later."""

    permanent = False


class WebhookRejected(StarfaceError):
    """Raised when an inbound webhook fails verification; `reason` is safe to log and to answer with."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"STARFACE webhook rejected: {reason}")
        self.reason = reason


class WebhookMalformed(WebhookRejected):
    """Raised when an authentic, timely webhook's body breaks the contract (answer 400, not 401)."""


class WebhookReplayed(StarfaceError):
    """Raised when a webhook's `eventId` was accepted before: answer 202 and do not process it again."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"STARFACE webhook event {event_id} was already accepted; not processed again")
        self.event_id = event_id


def address_refused(base_url: str, exc: InternalAddressRefused) -> StarfaceAddressRefused:
    """The error for a PBX whose name leads into the service's own network (connectors/egress.py)."""
    return StarfaceAddressRefused(
        f"STARFACE at {base_url}: {exc}; the service connects only to public addresses. Give the PBX's "
        "public https:// address, or, for a PBX reached over a VPN, have the operator set "
        "TEAMSCONNECT_ALLOW_PRIVATE_URLS=true"
    )
