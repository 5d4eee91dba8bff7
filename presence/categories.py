"""Teams status categories: the rows of a tenant's rule table, derived from Graph presence.

Graph reports an availability/activity pair plus out-of-office (graph-api.md section 1). Values are
compared case-insensitively because the docs disagree on casing (PascalCase on the wire, camelCase in
the metadata, which also swaps some activity values into availability), so both fields are looked up
in the same token table. Unknown values fall back to `Offline`, the category that asks for nothing.

Precedence when several categories match (highest first): InACall, Presenting, InAMeeting,
DoNotDisturb, Busy, OutOfOffice, Away, BeRightBack, Available, Offline. Being on a call or in a meeting
matters more to a caller than an out-of-office window ("In a call + OOF" is `Busy/InACall` with
`isOutOfOffice`); out of office beats the passive states, because a user on holiday typically shows
Away or Offline.
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """One row of the rule table. The value is the name shown to admins and stored in JSON."""

    IN_A_CALL = "InACall"
    PRESENTING = "Presenting"
    IN_A_MEETING = "InAMeeting"
    DO_NOT_DISTURB = "DoNotDisturb"
    BUSY = "Busy"
    AWAY = "Away"
    BE_RIGHT_BACK = "BeRightBack"
    OUT_OF_OFFICE = "OutOfOffice"
    AVAILABLE = "Available"
    OFFLINE = "Offline"


#: The names Teams users see for each category, English then German (issue 11); accepted as rule-table keys
#: next to the category names, and shown by the CLI. Further spellings Teams uses are in `_ALIASES`.
TEAMS_NAMES: dict[Category, tuple[str, str]] = {
    Category.IN_A_CALL: ("Busy - In a call", "Beschäftigt - Am Telefon"),
    Category.PRESENTING: ("Do not disturb - Presenting", "Nicht stören - Präsentieren"),
    Category.IN_A_MEETING: ("Busy - In a meeting", "Beschäftigt - In einer Besprechung"),
    Category.DO_NOT_DISTURB: ("Do not disturb", "Nicht stören"),
    Category.BUSY: ("Busy", "Beschäftigt"),
    Category.AWAY: ("Away", "Abwesend"),
    Category.BE_RIGHT_BACK: ("Be right back", "Bin gleich zurück"),
    Category.OUT_OF_OFFICE: ("Out of office", "Nicht im Büro"),
    Category.AVAILABLE: ("Available", "Verfügbar"),
    Category.OFFLINE: ("Offline", "Offline"),
}
_ALIASES: dict[Category, tuple[str, ...]] = {
    Category.IN_A_CALL: ("In a call", "Am Telefon", "On the phone", "In a conference call"),
    Category.PRESENTING: ("Presenting", "Präsentieren", "Präsentiert", "Nicht stören - Präsentiert"),
    Category.IN_A_MEETING: ("In a meeting", "In einer Besprechung", "Beschäftigt - In einer Besprechung"),
    Category.DO_NOT_DISTURB: ("Focusing", "Konzentriert", "Urgent interruptions only"),
    Category.OUT_OF_OFFICE: ("Abwesenheitsnotiz",),
    Category.OFFLINE: ("Appear offline", "Als offline anzeigen"),
}


def _key(name: str) -> str:
    """Compared regardless of case, dashes (-, –, —) and spacing: "Beschäftigt – Am Telefon"."""
    text = name.replace("\u2013", "-").replace("\u2014", "-").casefold()
    return " ".join(text.replace("-", " - ").split())


_BY_NAME: dict[str, Category] = {
    _key(name): category
    for category in Category
    for name in (*TEAMS_NAMES[category], *_ALIASES.get(category, ()))
}


def category_named(name: str) -> Category | None:
    """A category by its own name ("InACall", "in_a_call") or the name Teams users see, English or German
    ("Busy - In a call", "Beschäftigt - Am Telefon"); None if unknown."""
    compact = name.replace("_", "").replace("-", "").replace(" ", "").lower()
    own = next((c for c in Category if c.value.lower() == compact), None)
    return own if own is not None else _BY_NAME.get(_key(name))


def teams_name(category: Category) -> str:
    """ "Busy - In a call / Beschäftigt - Am Telefon": how the CLI shows a rule-table row."""
    english, german = TEAMS_NAMES[category]
    return english if english == german else f"{english} / {german}"


# Categories during which the STARFACE telephony status shows "on the phone" (issue 5).
CALL_CATEGORIES = frozenset({Category.IN_A_CALL, Category.PRESENTING})

# Lower-cased Graph tokens (availability or activity) -> category; checked in _PRECEDENCE order.
_TOKENS: dict[Category, frozenset[str]] = {
    Category.IN_A_CALL: frozenset({"inacall", "inaconferencecall"}),
    Category.PRESENTING: frozenset({"presenting"}),
    Category.IN_A_MEETING: frozenset({"inameeting"}),
    Category.DO_NOT_DISTURB: frozenset({"donotdisturb", "urgentinterruptionsonly", "focusing"}),
    Category.BUSY: frozenset({"busy", "busyidle"}),
    Category.OUT_OF_OFFICE: frozenset({"outofoffice"}),
    Category.AWAY: frozenset({"away"}),
    Category.BE_RIGHT_BACK: frozenset({"berightback"}),
    Category.AVAILABLE: frozenset({"available", "availableidle", "availableinactive"}),
}
_PRECEDENCE: tuple[Category, ...] = tuple(_TOKENS)

# Presence values repeat a lot (650 users, a handful of distinct pairs), so results are memoised.
# The key space is bounded by what Graph sends; the cap guards against a misbehaving upstream.
_CACHE: dict[tuple[str, str, bool], Category] = {}
_CACHE_LIMIT = 4096


def categorize(availability: str | None, activity: str | None, out_of_office: bool = False) -> Category:
    """Map a Graph presence to its rule-table category (see the module docstring for precedence)."""
    key = (availability or "", activity or "", out_of_office)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    category = _categorize(key[0].lower(), key[1].lower(), out_of_office)
    if len(_CACHE) < _CACHE_LIMIT:
        _CACHE[key] = category
    return category


def _categorize(availability: str, activity: str, out_of_office: bool) -> Category:
    for category in _PRECEDENCE:
        if category is Category.OUT_OF_OFFICE and out_of_office:
            return category
        tokens = _TOKENS[category]
        if activity in tokens or availability in tokens:
            return category
    return Category.OFFLINE
