"""Instance names as in the STARFACE module, and the stable slug derived from them for URLs and commands.

A name is what the admin calls the instance: any Unicode letters and digits, spaces and punctuation
("TeamsConnect Vertrieb", "Büro Köln"), unique per deployment regardless of case. The slug is derived once
(`buero-koeln`), stored, and kept when the name changes, so URLs and scripts keep working.
"""

from __future__ import annotations

import re
import unicodedata

from models.tenant import SLUG_MAX, slugify

__all__ = ["NAME_MAX", "SLUG_MAX", "check_slug", "clean_name", "slugify", "unique_slug"]

NAME_MAX = 100
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$")
_ALLOWED = ("L", "M", "N", "P", "S", "Zs")  # letters, marks, digits, punctuation, symbols, spaces


def clean_name(value: str) -> str:
    """The name with surrounding and repeated spaces removed; raises ValueError saying what to fix."""
    name = " ".join(unicodedata.normalize("NFC", value).split(" ")).strip()
    name = re.sub(r" {2,}", " ", name)
    if not name or len(name) > NAME_MAX:
        raise ValueError(f"must be 1..{NAME_MAX} characters, e.g. \"TeamsConnect Vertrieb\"")
    bad = [c for c in name if not unicodedata.category(c).startswith(_ALLOWED)]
    if bad:
        raise ValueError(
            f"may hold letters, digits, spaces and punctuation, not {bad[0]!r} (tabs, line breaks and "
            "control characters are not allowed)"
        )
    if not any(c.isalnum() for c in name):
        raise ValueError("must contain a letter or digit, e.g. \"Büro Köln\"")
    if name.isdigit():
        raise ValueError("must not be all digits (a number means a tenant id on the command line)")
    return name


def check_slug(value: str) -> str:
    """A slug given by hand: lower-case letters, digits and '-', not all digits."""
    if not _SLUG.match(value) or value.isdigit():
        raise ValueError(
            f"must be 1..{SLUG_MAX} lower-case letters a-z, digits and '-' (not at either end, not all "
            "digits), e.g. buero-koeln; leave it out to derive it from the name"
        )
    return value


def unique_slug(base: str, taken: set[str]) -> str:
    """`base`, or `base-2`, `base-3`, ... the first not in `taken`."""
    if base not in taken:
        return base
    n = 2
    while f"{base[:SLUG_MAX - len(str(n)) - 1]}-{n}" in taken:
        n += 1
    return f"{base[:SLUG_MAX - len(str(n)) - 1]}-{n}"
