"""Test connection (sync/connection_test.py) keeps the sync's limits: its STARFACE checks pass the PBX's
gate, and it reads no presence while Microsoft's Retry-After blocks the tenant."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from embedded.stack import Stack, StackFactory
from models import Tenant
from models.db import transaction
from models.secrets import read_secrets
from simulators.paired import paired_seeds
from sync.connection_test import check_new_starface, run_connection_test
from tenants.diagnostics import CheckResult
from tests.support.coordination import RedisDown, run_while_pbx_full, using_coordination


@pytest.fixture
def stack(stacks: StackFactory) -> Iterator[Stack]:
    for built in stacks.build(paired_seeds(2), web=False):
        built.add_tenant()
        yield built


def _checks(stack: Stack) -> dict[str, CheckResult]:
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
        assert tenant is not None
        return {check.name: check for check in run_connection_test(stack.runtime, session, tenant, 10.0)}


def test_its_starface_checks_wait_for_a_slot_of_the_pbx(stack: Stack) -> None:
    checks, seen = run_while_pbx_full(stack, lambda: _checks(stack), "the connection test")
    assert checks["STARFACE REST login and admin rights"].status == "OK"
    assert checks["STARFACE bridge ping"].status == "OK"
    assert len(seen.granted) == 2  # one slot for the REST check's requests, one for the ping


def test_the_wizards_check_of_credentials_not_stored_yet_waits_for_a_slot_of_the_pbx(stack: Stack) -> None:
    """The console's new-tenant wizard checks the STARFACE login before storing it: a PBX that already
    serves tenants (here the stack's) gets that check within its limits too."""
    with transaction(stack.runtime.sessions) as session:
        tenant = session.get(Tenant, stack.tenant_id)
        assert tenant is not None
        base_url, login_id = tenant.starface_base_url, tenant.starface_login_id
        password = read_secrets(tenant, stack.runtime.box).starface_password
    check, seen = run_while_pbx_full(
        stack, lambda: check_new_starface(stack.runtime, base_url, login_id, password, 10.0),
        "the wizard's STARFACE check")
    assert check.status == "OK", check
    assert len(seen.granted) == 1  # one slot for the check's requests


def test_it_reads_no_presence_while_microsoft_blocks_the_tenant(stack: Stack) -> None:
    stack.runtime.coordination.block(stack.tenant_id, 30.0)
    before = stack.ms.count("getPresencesByUserId")
    checks = _checks(stack)
    assert checks["Microsoft sign-in and user read"].status == "OK"
    skipped = checks["Microsoft presence read"]
    assert skipped.status == "SKIPPED" and "Retry-After" in skipped.detail
    assert stack.ms.count("getPresencesByUserId") == before


def test_it_tests_anyway_while_the_shared_store_is_down(stack: Stack) -> None:
    with using_coordination(stack, RedisDown()):
        checks = _checks(stack)
    assert {check.status for check in checks.values()} == {"OK"}
