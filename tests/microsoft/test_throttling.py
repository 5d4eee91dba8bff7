"""429 and 5xx: Retry-After (fractional) is honoured with no request before it elapses; typed errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connectors.graph import GraphClient, GraphThrottled, GraphUnavailable
from simulators.microsoft import MicrosoftSimControl
from tests.microsoft.conftest import FakeClock


def test_it_honours_a_fractional_retry_after(
    make_client: Callable[..., GraphClient],
    control: MicrosoftSimControl,
    tenant: dict[str, Any],
    clock: FakeClock,
) -> None:
    client = make_client(clock=clock)
    user = tenant["users"][0]["id"]
    control.configure(fractionalRetryAfter=True)
    control.add_fault("getPresencesByUserId", 429, retry_after=2.128)
    with pytest.raises(GraphThrottled) as first:
        client.get_presences([user])
    assert first.value.retry_after == pytest.approx(2.128) and not first.value.permanent
    clock.now += 2.1
    with pytest.raises(GraphThrottled) as second:
        client.get_presences([user])
    assert second.value.retry_after == pytest.approx(0.028, abs=1e-6)
    assert control.count("getPresencesByUserId") == 1  # nothing was sent while waiting
    clock.now += 0.03
    assert len(client.get_presences([user])) == 1
    assert control.count("getPresencesByUserId") == 2


def test_it_is_throttled_by_the_presence_budget(
    make_client: Callable[..., GraphClient],
    control: MicrosoftSimControl,
    tenant: dict[str, Any],
    clock: FakeClock,
) -> None:
    control.configure(presenceLimit=3, presenceWindow=30, fractionalRetryAfter=True)
    client = make_client(clock=clock)
    user = tenant["users"][0]["id"]
    for _ in range(3):
        client.get_presences([user])
    with pytest.raises(GraphThrottled) as caught:
        client.get_presences([user])
    # One token refills every 10 s, and the rejected request used one too (S16), so 2 refills are needed.
    assert 19.8 < caught.value.retry_after <= 20.0
    clock.now += caught.value.retry_after
    control.advance_clock(caught.value.retry_after)
    client.get_presences([user])
    statuses = [e["status"] for e in control.requests(route="getPresencesByUserId")["entries"]]
    assert statuses == [200, 200, 200, 429, 200]


def test_it_keeps_tenants_budgets_apart(
    make_client: Callable[..., GraphClient],
    control: MicrosoftSimControl,
    tenant: dict[str, Any],
    other_tenant: dict[str, Any],
) -> None:
    control.configure(presenceLimit=1)
    make_client(tenant).get_presences([tenant["users"][0]["id"]])
    assert len(make_client(other_tenant).get_presences([other_tenant["users"][0]["id"]])) == 1


def test_it_reports_5xx_and_timeouts_as_unavailable(
    make_client: Callable[..., GraphClient],
    control: MicrosoftSimControl,
    tenant: dict[str, Any],
    clock: FakeClock,
) -> None:
    client = make_client(clock=clock, timeout=0.3)
    user = tenant["users"][0]["id"]
    client.check_access()
    control.add_fault("getPresencesByUserId", 503, retry_after=4)
    with pytest.raises(GraphUnavailable) as unavailable:
        client.get_presences([user])
    assert unavailable.value.retry_after == 4 and not unavailable.value.permanent
    clock.now += 4
    control.add_fault("*", None, delay_s=1.0)
    with pytest.raises(GraphUnavailable):
        client.get_presences([user])
    assert len(client.get_presences([user])) == 1
