"""Keeps the UCI token out of logs: httpx logs every request URL at INFO, and the token is a query parameter.

The token is a password-equivalent (anyone holding it can call the bridge as the service account), so a
filter on the "httpx" logger replaces its value before any handler formats the record.
"""

from __future__ import annotations

import logging
import re

_UCI_PARAM = re.compile(r"(de\.vertico\.starface\.(?:auth|jwt)=)[^&\s\"']+")


def redact(text: str) -> str:
    return _UCI_PARAM.sub(r"\1[redacted]", text)


class _RedactUciToken(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(str(a)) if "de.vertico.starface" in str(a) else a for a in record.args)
        if isinstance(record.msg, str) and "de.vertico.starface" in record.msg:
            record.msg = redact(record.msg)
        return True


_FILTER = _RedactUciToken()


def install() -> None:
    """Idempotent: adds the filter to the loggers that may print request URLs."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
