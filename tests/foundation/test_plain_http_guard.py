"""Outside embedded mode no client is built for a plain-http URL (issue 13, item 6): a tenant stored before
the schema refused such URLs (or written around it) must not send its secrets in clear text."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from connectors.graph import GraphCredentialError
from connectors.starface import StarfaceError
from models.crypto import SecretBox
from sync.coordination import LocalCoordination
from sync.runtime import Runtime
from tests.support.factories import STARFACE_PASSWORD, tenant_row


def _runtime(mode: str, pg_sessions: sessionmaker[Session], box: SecretBox) -> Runtime:
    settings = Settings.model_construct(mode=mode, ca_bundle="", log_level="INFO")
    return Runtime(settings=settings, engine=pg_sessions.kw["bind"], sessions=pg_sessions, box=box,
                   coordination=LocalCoordination())


def test_production_builds_no_client_for_a_plain_http_pbx_or_graph(
    pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    runtime = _runtime("production", pg_sessions, box)
    with pg_sessions() as session, session.begin():
        pbx = tenant_row(session, box, "plain-pbx")
        pbx.starface_base_url = "http://pbx.contoso.example"  # stored around the schema
        graph = tenant_row(session, box, "plain-graph", graph_base_url="http://graph.contoso.example")
        for build in (runtime.starface, runtime.bridge):
            with pytest.raises(StarfaceError) as refused:
                build(pbx)
            assert "https://" in str(refused.value) and STARFACE_PASSWORD not in str(refused.value)
        with pytest.raises(GraphCredentialError):
            runtime.graph(graph)


def test_embedded_mode_keeps_loopback_http_for_the_simulators(
    pg_sessions: sessionmaker[Session], box: SecretBox
) -> None:
    runtime = _runtime("embedded", pg_sessions, box)
    with pg_sessions() as session, session.begin():
        tenant = tenant_row(session, box, "simulated")
        tenant.starface_base_url = "http://127.0.0.1:9"
        assert runtime.starface(tenant) is not None
    runtime.close()
