"""German and English labels for the console: Teams statuses, STARFACE terms and the page furniture.

The language comes from the `tc_lang` cookie (the switch in the header), else the browser's
Accept-Language; anything but German gets English.
"""

from __future__ import annotations

from fastapi import Request

LANGUAGES = ("en", "de")

LABELS: dict[str, dict[str, str]] = {
    # Teams statuses (rule table categories)
    "InACall": {"en": "In a call", "de": "Im Anruf"},
    "Presenting": {"en": "Presenting", "de": "Präsentiert"},
    "InAMeeting": {"en": "In a meeting", "de": "In einer Besprechung"},
    "DoNotDisturb": {"en": "Do not disturb", "de": "Nicht stören"},
    "Busy": {"en": "Busy", "de": "Beschäftigt"},
    "Away": {"en": "Away", "de": "Abwesend"},
    "BeRightBack": {"en": "Be right back", "de": "Bin gleich zurück"},
    "OutOfOffice": {"en": "Out of office", "de": "Nicht im Büro"},
    "Available": {"en": "Available", "de": "Verfügbar"},
    "Offline": {"en": "Offline", "de": "Offline"},
    # STARFACE terms
    "dnd": {"en": "Do not disturb (DND)", "de": "Nicht stören"},
    "chat_text": {"en": "Chat status", "de": "Chat-Status"},
    "telephony": {"en": "Telephony status", "de": "Telefoniestatus"},
    "teams_status": {"en": "Teams status", "de": "Teams-Status"},
    "set": {"en": "Set", "de": "Setzen"},
    "clear": {"en": "Clear", "de": "Aufheben"},
    "leave": {"en": "Leave unchanged", "de": "Nicht ändern"},
    # furniture
    "tenants": {"en": "Tenants", "de": "Mandanten"},
    "new_tenant": {"en": "New tenant", "de": "Neuer Mandant"},
    "general": {"en": "General", "de": "Allgemein"},
    "user_selection": {"en": "User selection", "de": "Benutzerauswahl"},
    "user_status_table": {"en": "User status table", "de": "Benutzerstatus-Tabelle"},
    "authentication": {"en": "Authentication", "de": "Authentifizierung"},
    "test_connection": {"en": "Test connection", "de": "Verbindung testen"},
    "changes": {"en": "Changes", "de": "Änderungen"},
    "log": {"en": "Log", "de": "Protokoll"},
    "health": {"en": "Health", "de": "Zustand"},
    "dry_run": {"en": "Dry run", "de": "Probelauf"},
    "save": {"en": "Save", "de": "Speichern"},
    "reset_defaults": {"en": "Reset to defaults", "de": "Auf Standard zurücksetzen"},
    "sign_out": {"en": "Sign out", "de": "Abmelden"},
    "sign_in": {"en": "Sign in", "de": "Anmelden"},
    "search": {"en": "Search", "de": "Suchen"},
    "users": {"en": "Users", "de": "Benutzer"},
    "linked": {"en": "linked", "de": "verknüpft"},
    "unmatched": {"en": "unmatched", "de": "nicht gefunden"},
    "duplicate_email": {"en": "duplicate e-mail", "de": "doppelte E-Mail"},
    "no_email": {"en": "no e-mail", "de": "keine E-Mail"},
    "excluded": {"en": "excluded", "de": "ausgeschlossen"},
    "enable": {"en": "Enable", "de": "Aktivieren"},
    "disable": {"en": "Disable", "de": "Deaktivieren"},
    "sync_directory": {"en": "Sync directory now", "de": "Verzeichnis jetzt abgleichen"},
}


def language(request: Request) -> str:
    chosen = request.cookies.get("tc_lang")
    if chosen in LANGUAGES:
        return chosen
    return "de" if request.headers.get("accept-language", "").lower().startswith("de") else "en"


def translator(lang: str):  # type: ignore[no-untyped-def]
    def t(key: str) -> str:
        entry = LABELS.get(key)
        return entry.get(lang, entry["en"]) if entry else key

    return t
