"""`GET /onboarding/consent`: where Microsoft sends the customer's Global Administrator back after the
admin-consent link (tenants/consent.py). Records the answer for the tenant the link was made for, runs the
connection test on a consent, queues the directory sync, and shows the result in German and English."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from models.db import transaction
from sync.connection_test import run_connection_test
from sync.ports import QueueUnavailable
from sync.runtime import get_runtime
from tenants.consent import ConsentLinkInvalid, record_answer
from tenants.diagnostics import CheckResult
from workers.task_queue import CELERY_QUEUE

router = APIRouter()
CHECK_TIMEOUT_S = 10.0


def _page(status: int, title: str, lines: list[str]) -> HTMLResponse:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    body = (f"<!doctype html><html lang=\"de\"><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><ul>{items}</ul></html>")
    return HTMLResponse(body, status_code=status)


def _check_line(check: CheckResult) -> str:
    return f"{check.status} {check.name}: {check.detail}"


@router.get("/onboarding/consent", response_class=HTMLResponse)
def consent_answer(request: Request) -> HTMLResponse:
    """Takes the answer (admin_consent, tenant, state; or error, error_description, state)."""
    runtime = get_runtime()
    query = {key: value[:2000] for key, value in request.query_params.items()}
    try:
        with transaction(runtime.sessions) as session:
            answer = record_answer(session, runtime.box, query)
            name = answer.tenant.name
            if not answer.granted:
                return _page(200, f"Zustimmung abgelehnt / Consent refused: {name}", [answer.message])
            checks = run_connection_test(runtime, session, answer.tenant, CHECK_TIMEOUT_S)
            tenant_id = answer.tenant.id
    except ConsentLinkInvalid as exc:
        return _page(400, "Ungültiger Link / Invalid link", [str(exc)])
    lines = [_check_line(check) for check in checks]
    try:
        CELERY_QUEUE.directory_sync(tenant_id)
        lines.append("Benutzer werden jetzt verknüpft / users are being linked now (directory sync queued)")
    except QueueUnavailable:  # the periodic directory sync (15 min) links them as well
        lines.append("the directory sync could not be queued now; the periodic one links the users "
                     "within 15 minutes")
    failed = any(check.status == "FAILED" for check in checks)
    title = (f"Zustimmung erteilt / Consent given: {name}" if not failed else
             f"Zustimmung erteilt, Test fehlgeschlagen / Consent given, test failed: {name}")
    return _page(200, title, lines)
