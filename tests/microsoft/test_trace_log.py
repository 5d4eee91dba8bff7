"""Log level TRACE (issue 11): one summary line per Graph request, without token or query string."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.graph import GraphClient
from connectors.trace import TRACE


def test_it_summarises_graph_requests_without_token_or_query(
    graph: GraphClient, tenant: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    ids = [u["id"] for u in tenant["users"][:3]]
    with caplog.at_level(TRACE, logger="connectors"):
        graph.get_presences(ids)
    lines = [r.getMessage() for r in caplog.records if r.levelno == TRACE]
    assert len(lines) == 1
    assert lines[0].startswith("graph POST https://")
    assert "/v1.0/communications/getPresencesByUserId -> 200 in " in lines[0]
    secret = tenant["apps"][0]["secret"]
    assert not any(secret in line or "Bearer" in line or "?" in line for line in lines)

