"""Microsoft Graph connector: app-only (client credentials, secret or certificate) presence, users and
groups for one customer tenant, and the admin-consent link for our multi-tenant app. Public names are
re-exported here; the `_`-modules are private."""

from connectors.graph._client import (
    MAX_PRESENCE_IDS,
    SESSION_PAIRS,
    GraphClient,
    GraphHttp,
    PresenceRequest,
    shared_graph_http,
)
from connectors.graph._consent import AdminConsentResult, admin_consent_url, parse_admin_consent_redirect
from connectors.graph._credentials import CertificateCredential, ClientCredential
from connectors.graph._errors import (
    AADSTS_HELP,
    CONSENT_FIX,
    GraphAddressRefused,
    GraphAuthError,
    GraphBadRequest,
    GraphCredentialError,
    GraphError,
    GraphNotFound,
    GraphThrottled,
    GraphUnavailable,
)
from connectors.graph._models import (
    ACTIVITIES,
    AVAILABILITIES,
    UNKNOWN,
    DirectoryUser,
    Presence,
    compare_sequence,
)
from connectors.graph._reads import PresenceReads

__all__ = [
    "AADSTS_HELP",
    "ACTIVITIES",
    "AVAILABILITIES",
    "CONSENT_FIX",
    "MAX_PRESENCE_IDS",
    "SESSION_PAIRS",
    "UNKNOWN",
    "AdminConsentResult",
    "CertificateCredential",
    "ClientCredential",
    "DirectoryUser",
    "GraphAddressRefused",
    "GraphAuthError",
    "GraphBadRequest",
    "GraphClient",
    "GraphCredentialError",
    "GraphError",
    "GraphHttp",
    "GraphNotFound",
    "GraphThrottled",
    "GraphUnavailable",
    "Presence",
    "PresenceReads",
    "PresenceRequest",
    "admin_consent_url",
    "compare_sequence",
    "parse_admin_consent_redirect",
    "shared_graph_http",
]
