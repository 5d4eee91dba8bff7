"""STARFACE connector: REST (users, groups, DND via phoneconfig), the bridge module (XML-RPC), webhooks."""

from connectors.starface._errors import (
    BridgeError,
    BridgeNotInstalled,
    BridgePbxError,
    BridgeSecretRejected,
    BridgeUnknownAccount,
    StarfaceError,
    StarfaceForbidden,
    StarfaceLoginFailed,
    StarfaceNotFound,
    StarfaceProtocolError,
    StarfaceUnavailable,
    WebhookRejected,
    WebhookReplayed,
)
from connectors.starface._models import (
    AccessCheck,
    BridgeChatStatus,
    BridgeInfo,
    BridgeUserState,
    ChatPresence,
    DndWrite,
    StarfaceEvent,
    StarfaceGroup,
    StarfaceUser,
    TelephonyState,
)
from connectors.starface.bridge import StarfaceBridgeClient
from connectors.starface.rest import StarfaceRestClient
from connectors.starface.webhook import EventIdStore, InMemoryEventIdStore, sign, verify_webhook

__all__ = [
    "AccessCheck",
    "BridgeChatStatus",
    "BridgeError",
    "BridgeInfo",
    "BridgeNotInstalled",
    "BridgePbxError",
    "BridgeSecretRejected",
    "BridgeUnknownAccount",
    "BridgeUserState",
    "ChatPresence",
    "DndWrite",
    "EventIdStore",
    "InMemoryEventIdStore",
    "StarfaceBridgeClient",
    "StarfaceError",
    "StarfaceEvent",
    "StarfaceForbidden",
    "StarfaceGroup",
    "StarfaceLoginFailed",
    "StarfaceNotFound",
    "StarfaceProtocolError",
    "StarfaceRestClient",
    "StarfaceUnavailable",
    "StarfaceUser",
    "TelephonyState",
    "WebhookRejected",
    "WebhookReplayed",
    "sign",
    "verify_webhook",
]
