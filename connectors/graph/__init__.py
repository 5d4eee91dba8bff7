"""Microsoft Graph connector: app-only (client credentials) presence, users and groups for one customer
tenant. Public names are re-exported here; the `_`-modules are private."""

from connectors.graph._client import MAX_PRESENCE_IDS, SESSION_PAIRS, GraphClient
from connectors.graph._errors import (
    AADSTS_HELP,
    GraphAuthError,
    GraphBadRequest,
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
from connectors.graph._registry import get_graph_client, reset_graph_clients

__all__ = [
    "AADSTS_HELP",
    "ACTIVITIES",
    "AVAILABILITIES",
    "MAX_PRESENCE_IDS",
    "SESSION_PAIRS",
    "UNKNOWN",
    "DirectoryUser",
    "GraphAuthError",
    "GraphBadRequest",
    "GraphClient",
    "GraphError",
    "GraphNotFound",
    "GraphThrottled",
    "GraphUnavailable",
    "Presence",
    "compare_sequence",
    "get_graph_client",
    "reset_graph_clients",
]
