"""The simulated PBX's bridge delivers to the web app over real HTTP: signed as the contract says, at least
once (every event sent twice here), and each event reaches the events queue exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import uvicorn

from simulators.starface import StarfaceSimControl, StarfaceSimulator, make_seed
from sync.runtime import Runtime
from tests.support import wait_until
from tests.web.conftest import ADMIN_TOKEN, SECRET_A, Broker, Tenants
from web.app import create_app
from web.settings import WebSettings

LOGIN = "1100"  # account 100 of make_seed


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process keeps its own handlers
        pass


@pytest.fixture
def web_url(runtime: Runtime) -> Iterator[str]:
    app = create_app(WebSettings(admin_token=ADMIN_TOKEN))
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=10, what="the web app to listen")
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def pbx(web_url: str, tenants: Tenants) -> Iterator[StarfaceSimControl]:
    seed = make_seed(2, bridge_secret=SECRET_A)
    with StarfaceSimulator(seed, webhook_retry_base_s=0.02, rng_seed=1) as sim:
        control = StarfaceSimControl(sim.base_url)
        control.set_webhook(f"{web_url}/hooks/starface/{tenants.alpha}", duplicate_rate=1.0)
        yield control
        control.close()


def test_it_takes_each_bridge_event_once_despite_duplicate_deliveries(
    pbx: StarfaceSimControl, tenants: Tenants, broker: Broker
) -> None:
    pbx.ring(LOGIN)
    pbx.answer(LOGIN)
    pbx.hang_up(LOGIN)
    pbx.toggle_dnd_by_hand(LOGIN, True)
    pbx.wait_webhooks_idle(timeout=10)

    attempts = pbx.webhooks()["attempts"]
    event_ids = [a["eventId"] for a in attempts if not a["duplicate"]]
    assert len(event_ids) >= 4
    assert {a["status"] for a in attempts} == {202}
    assert sum(1 for a in attempts if a["duplicate"]) == len(event_ids)
    messages = broker.messages()
    assert [m["kwargs"]["event"]["event_id"] for m in messages] == event_ids
    assert {m["kwargs"]["tenant_id"] for m in messages} == {tenants.alpha}
    assert [m["kwargs"]["event"]["type"] for m in messages][-1] == "dnd"
