"""A tenant's presence policy: which outputs are on, how STARFACE calls show in Teams, and the rule table.

The rule table maps each Teams category to a DND action (set / clear / leave) and a chat text or none.
`DEFAULT_RULES` is the table of issue 5; tenants edit a copy. Policies are plain data: the DB layer
stores them with `to_json()` and loads them with `TenantPolicy.from_json()`, which rejects bad input
with a `PolicyError` naming the field.

Which outputs exist depends on the tier (starface-bridge.md): DND goes over REST and always works;
chat text, telephony status and the Teams session need the bridge. The `*_enabled` properties combine
the tenant's switches with `has_bridge`, so the decision code asks one question per output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from presence.categories import Category

_E = TypeVar("_E", bound=StrEnum)

CHAT_TEXT_MAX = 255  # a STARFACE chat status message is a short line; longer input is a config mistake


class PolicyError(ValueError):
    """Raised when a policy or rule table (usually from JSON) is invalid; the message names the field."""


class DndAction(StrEnum):
    """What a Teams category asks of the STARFACE DND."""

    SET = "set"
    CLEAR = "clear"  # clears our DND; a manual one only when the Teams status changes (Teams leads)
    LEAVE = "leave"  # never changes DND


class ChatSymbol(StrEnum):
    """The STARFACE chat presence symbol a rule may set (bridge setChatStatus `presence`); a rule without
    one keeps the symbol the user has ("keep")."""

    AVAILABLE = "AVAILABLE"
    AWAY = "AWAY"
    DO_NOT_DISTURB = "DO_NOT_DISTURB"
    EXTENDED_AWAY = "EXTENDED_AWAY"


class TeamsPresenceMode(StrEnum):
    """How a STARFACE call shows in Teams. Only DND stops Teams calls from ringing (peers.md section 2)."""

    BUSY_IN_A_CALL = "busy_in_a_call"
    DND_PRESENTING = "dnd_presenting"


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the rule table."""

    dnd: DndAction
    chat_text: str | None  # None = no text of ours
    chat_symbol: ChatSymbol | None = None  # None = keep the user's symbol

    def to_json(self) -> dict[str, Any]:
        return {"dnd": self.dnd.value, "chat_text": self.chat_text,
                "chat_symbol": None if self.chat_symbol is None else self.chat_symbol.value}


DEFAULT_RULES: Mapping[Category, Rule] = MappingProxyType(
    {
        Category.IN_A_CALL: Rule(DndAction.SET, "On a call in MS Teams", ChatSymbol.DO_NOT_DISTURB),
        Category.PRESENTING: Rule(DndAction.SET, "Presenting in MS Teams", ChatSymbol.DO_NOT_DISTURB),
        Category.IN_A_MEETING: Rule(DndAction.SET, "In a Teams meeting"),
        Category.DO_NOT_DISTURB: Rule(DndAction.SET, "Do not disturb (MS Teams)", ChatSymbol.DO_NOT_DISTURB),
        Category.BUSY: Rule(DndAction.LEAVE, "Busy (MS Teams)"),
        Category.AWAY: Rule(DndAction.LEAVE, None),
        Category.BE_RIGHT_BACK: Rule(DndAction.LEAVE, None),
        Category.OUT_OF_OFFICE: Rule(DndAction.LEAVE, "Out of office"),
        Category.AVAILABLE: Rule(DndAction.CLEAR, None),
        Category.OFFLINE: Rule(DndAction.CLEAR, None),
    }
)


#: The options an operator sets per tenant: the fields of `TenantPolicy` below by these names (its other
#: fields, the tier and the rule table, come from elsewhere). The tenant schema, its stored columns and the
#: row -> policy mapping all copy by this one list.
OPTION_FIELDS: tuple[str, ...] = (
    "set_dnd", "set_chat_text", "set_telephony", "set_teams_presence", "teams_presence_mode",
    "ringing_counts_as_call", "respect_manual_dnd", "manual_dnd_to_teams",
)


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """Per-tenant options. Defaults follow the STARFACE module: Teams -> DND and text on, Teams leads (a
    Teams status change decides the DND, also over a manual one), a STARFACE call shows as DND/Presenting."""

    set_dnd: bool = True
    set_chat_text: bool = True
    set_telephony: bool = False
    set_teams_presence: bool = True
    teams_presence_mode: TeamsPresenceMode = TeamsPresenceMode.DND_PRESENTING
    ringing_counts_as_call: bool = False
    #: Keep a DND the user set by hand in STARFACE until the user clears it (else Teams leads: the next
    #: Teams status change decides the DND, also over a manual one).
    respect_manual_dnd: bool = False
    manual_dnd_to_teams: bool = False  # a manual STARFACE DND gives a Teams DND session
    has_bridge: bool = False  # tier 2 (starface-bridge.md); without it only DND is written
    rules: Mapping[Category, Rule] = field(default_factory=lambda: DEFAULT_RULES)

    def __post_init__(self) -> None:
        missing = [c.value for c in Category if c not in self.rules]
        if missing:
            raise PolicyError(f"rules: no rule for categories {', '.join(missing)}")
        for category, rule in self.rules.items():
            text = rule.chat_text
            if text is not None and (not text.strip() or len(text) > CHAT_TEXT_MAX):
                raise PolicyError(
                    f"rules.{category.value}.chat_text: must be None or 1..{CHAT_TEXT_MAX} visible characters"
                )

    @property
    def chat_enabled(self) -> bool:
        return self.set_chat_text and self.has_bridge

    @property
    def telephony_enabled(self) -> bool:
        return self.set_telephony and self.has_bridge

    @property
    def teams_session_enabled(self) -> bool:
        return self.set_teams_presence and self.has_bridge

    def to_json(self) -> dict[str, Any]:
        options = {name: getattr(self, name) for name in OPTION_FIELDS}
        options["teams_presence_mode"] = self.teams_presence_mode.value
        return {
            **options,
            "has_bridge": self.has_bridge,
            "rules": {category.value: rule.to_json() for category, rule in self.rules.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TenantPolicy:
        """Build a policy from stored JSON; absent options take their defaults, absent rules their row."""
        flags = {}
        for name in (*OPTION_FIELDS, "has_bridge"):
            if name == "teams_presence_mode":
                continue
            if name in data:
                if not isinstance(data[name], bool):
                    raise PolicyError(f"{name}: expected true or false, got {data[name]!r}")
                flags[name] = data[name]
        if "teams_leads" in data and "respect_manual_dnd" not in flags:  # stored before issue 11
            if not isinstance(data["teams_leads"], bool):
                raise PolicyError(f"teams_leads: expected true or false, got {data['teams_leads']!r}")
            flags["respect_manual_dnd"] = not data["teams_leads"]
        raw_mode = data.get("teams_presence_mode", TeamsPresenceMode.DND_PRESENTING.value)
        mode = _enum(TeamsPresenceMode, raw_mode, "teams_presence_mode")
        return cls(teams_presence_mode=mode, rules=rules_from_json(data.get("rules", {})), **flags)


def overlay_rules(overrides: Mapping[Category, Rule]) -> Mapping[Category, Rule]:
    """The rule table: the default rules with a tenant's own rows laid over them (the one overlay)."""
    return MappingProxyType({**DEFAULT_RULES, **overrides})


def rules_from_json(data: Mapping[str, Any]) -> Mapping[Category, Rule]:
    """Rule table from JSON `{category: {"dnd": "set", "chat_text": "..." | null, "chat_symbol": ...}}`, over
    the defaults (a row without `chat_symbol` keeps the symbol)."""
    if not isinstance(data, Mapping):
        raise PolicyError("rules: expected an object keyed by category")
    rules: dict[Category, Rule] = {}
    for name, row in data.items():
        category = _enum(Category, name, "rules")
        if not isinstance(row, Mapping):
            raise PolicyError(f"rules.{name}: expected an object with dnd and chat_text")
        dnd = _enum(DndAction, row.get("dnd"), f"rules.{name}.dnd")
        text = row.get("chat_text")
        if text is not None and not isinstance(text, str):
            raise PolicyError(f"rules.{name}.chat_text: expected a string or null")
        raw_symbol = row.get("chat_symbol")
        symbol = None if raw_symbol is None else _enum(ChatSymbol, raw_symbol, f"rules.{name}.chat_symbol")
        rules[category] = Rule(dnd, text, symbol)
    return overlay_rules(rules)


def _enum(enum: type[_E], value: Any, where: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise PolicyError(f"{where}: {value!r} is not one of {allowed}") from None
