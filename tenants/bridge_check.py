"""Bridge conformance kit: checks a real bridge installation against contract 1.1, clause by clause.

Each clause is PASS, FAIL or SKIP with what was seen and, on failure, the fix in the STARFACE admin's
words (German menu names, English explanation). Clauses:

1. ping and versions (module instance, secret, UCI login, contract version);
2. getStates for all users, 3. for a list, 4. for an unknown account (fault 404);
5. setChatStatus and 6. setTelephonyStatus round trips on a test user the admin names (restored after);
7. a signed test event (sendTestEvent) reaching our webhook receiver - the receiver notes its arrival,
   the caller's ``wait_test_event`` polls for it;
8. the PBX clock against ours.

The chat and telephony round trips change what the test user sees for about a second and put it back.
Nothing is written to the database. No secret reaches a clause's text. Each request to the bridge runs in
the caller's ``pbx_slot`` (the sync passes a slot of the PBX's gate: sync/bridge_verify.py), never the
wait for the test event.
"""

from __future__ import annotations

import contextlib
import secrets as _secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from connectors.starface import (
    BridgeChatStatus,
    BridgeInfo,
    BridgeNotInstalled,
    BridgeSecretRejected,
    BridgeTestSend,
    BridgeUnknownAccount,
    BridgeUserState,
    ChatPresence,
    StarfaceBridgeClient,
    StarfaceError,
    StarfaceLoginFailed,
    StarfaceProtocolError,
    StarfaceUnavailable,
    TelephonyState,
)
from models import Tenant
from models.secrets import TenantSecrets
from tenants.diagnostics import PbxSlot, hide_secrets

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
#: Above this the clock clause fails; above 300 s the service refuses every event (contract).
MAX_CLOCK_SKEW_S = 30.0
TEST_TEXT = "TeamsConnect Bridge-Test"

WaitTestEvent = Callable[[str, float], dict[str, Any] | None]


@dataclass(frozen=True)
class Clause:
    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _module_page(instance: str) -> str:
    return f"Admin > Module > Modul-Instanzen > '{instance}' > Konfiguration"


def _ping_fix(exc: StarfaceError, tenant: Tenant, instance: str) -> str:
    name = tenant.name
    if isinstance(exc, BridgeNotInstalled):
        return (f"No module instance named '{instance}' answers. In STARFACE: {_module_page(instance)}: "
                f"the instance name (Instanzname) must be exactly '{instance}' and the instance must be "
                f"started (aktiv). Or set the tenant to the real name: `teamsconnect tenant set {name} "
                "starface.bridge.instance=NAME`. / Keine Modul-Instanz dieses Namens gefunden.")
    if isinstance(exc, BridgeSecretRejected):
        return (f"The module variable 'secret' differs from the tenant's bridge secret. Choose one new "
                f"secret and enter it in both places: STARFACE {_module_page(instance)} > 'secret', and "
                f"`teamsconnect tenant set {name} starface.bridge.secret=@FILE`. / Das Bridge-Geheimnis "
                "im Modul stimmt nicht mit dem des Mandanten ueberein.")
    if isinstance(exc, StarfaceLoginFailed):
        return (f"STARFACE refused the service account '{tenant.starface_login_id}' (UCI token). Check "
                "login id and password in Admin > Benutzer and in the tenant (`teamsconnect tenant set "
                f"{name} starface.password=@FILE`).")
    if isinstance(exc, StarfaceUnavailable):
        return (f"The PBX at {tenant.starface_base_url} does not answer /xml-rpc. The firewall must let "
                "the service reach the PBX over HTTPS (443); check the address and the certificate.")
    if isinstance(exc, StarfaceProtocolError):
        return "Update the bridge module to contract 1.1 (docs/starface-bridge.md)."
    return "See docs/starface-bridge.md for the entry point's contract."


class _SlottedBridge:
    """The bridge requests the kit sends, each in a slot of ``pbx_slot``."""

    def __init__(self, bridge: StarfaceBridgeClient, pbx_slot: PbxSlot) -> None:
        self._bridge, self._slot = bridge, pbx_slot

    def ping(self) -> BridgeInfo:
        with self._slot():
            return self._bridge.ping()

    def get_states(self, accounts: Iterable[int] = ()) -> list[BridgeUserState]:
        with self._slot():
            return self._bridge.get_states(accounts)

    def set_chat_status(self, account: int, presence: ChatPresence | str | None,
                        message: str) -> BridgeChatStatus:
        with self._slot():
            return self._bridge.set_chat_status(account, presence, message)

    def set_telephony_status(self, account: int, state: TelephonyState | str) -> TelephonyState:
        with self._slot():
            return self._bridge.set_telephony_status(account, state)

    def send_test_event(self, nonce: str) -> BridgeTestSend:
        with self._slot():
            return self._bridge.send_test_event(nonce)


class _Run:
    def __init__(self, tenant: Tenant, bridge: _SlottedBridge, instance: str) -> None:
        self.tenant, self.bridge, self.instance = tenant, bridge, instance
        self.clauses: list[Clause] = []

    def add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.clauses.append(Clause(name, status, detail, fix))


def verify_bridge(tenant: Tenant, secrets: TenantSecrets, *, webhook_url: str, wait_test_event: WaitTestEvent,
                  test_user: str | None = None, verify: str | bool = True, timeout: float = 10.0,
                  event_timeout: float = 10.0, pbx_slot: PbxSlot = contextlib.nullcontext) -> list[Clause]:
    """Runs every clause against the tenant's bridge; see the module docstring."""
    hidden = [s for s in (secrets.starface_password, secrets.bridge_secret, secrets.ms_client_secret) if s]
    instance = tenant.bridge_instance or "TeamsConnectBridge"
    if not tenant.has_bridge or not secrets.bridge_secret:
        return [Clause("bridge configured", FAIL, "the tenant has no bridge (REST-only tier)",
                       f"Set the bridge in the tenant: `teamsconnect tenant set {tenant.name} "
                       "starface.bridge.secret=@FILE` (and starface.bridge.instance if not "
                       "TeamsConnectBridge).")]
    with StarfaceBridgeClient(tenant.starface_base_url, tenant.starface_login_id, secrets.starface_password,
                              instance=instance, secret=secrets.bridge_secret, verify=verify,
                              timeout=timeout) as bridge:
        run = _Run(tenant, _SlottedBridge(bridge, pbx_slot), instance)
        _clauses(run, webhook_url, wait_test_event, test_user, event_timeout)
    return [Clause(c.name, c.status, hide_secrets(c.detail, hidden), hide_secrets(c.fix, hidden))
            for c in run.clauses]


def _clauses(run: _Run, webhook_url: str, wait_test_event: WaitTestEvent, test_user: str | None,
             event_timeout: float) -> None:
    try:
        info = run.bridge.ping()
    except StarfaceError as exc:
        run.add("ping and versions", FAIL, str(exc), _ping_fix(exc, run.tenant, run.instance))
        for name in ("getStates (all users)", "getStates (a list)", "getStates (unknown account)",
                     "setChatStatus round trip", "setTelephonyStatus round trip", "test event via webhook",
                     "clock"):
            run.add(name, SKIP, "needs a working ping")
        return
    note = "" if info.version != "1" else " (contract 1.0: sendTestEvent and the clock need 1.1)"
    run.add("ping and versions", PASS, f"module instance '{run.instance}' answers: contract "
            f"v{info.version}, STARFACE {info.pbx_version or '(version not reported)'}{note}")
    everyone = _get_states(run)
    user = _test_user(run, everyone, test_user)
    _chat_round_trip(run, user)
    _telephony_round_trip(run, user)
    arrival = _test_event(run, info, webhook_url, wait_test_event, event_timeout)
    _clock(run, info, arrival)


def _get_states(run: _Run) -> list[BridgeUserState]:
    try:
        everyone = run.bridge.get_states()
    except StarfaceError as exc:
        run.add("getStates (all users)", FAIL, str(exc), "getStates with an empty 'accounts' array must "
                "return every user (GetAllUsers); see docs/starface-bridge.md")
        run.add("getStates (a list)", SKIP, "needs getStates for all users")
        run.add("getStates (unknown account)", SKIP, "needs getStates for all users")
        return []
    if not everyone:
        run.add("getStates (all users)", FAIL, "the bridge returned no users",
                "getStates with an empty 'accounts' array must return every user (GetAllUsers).")
    else:
        run.add("getStates (all users)", PASS, f"{len(everyone)} users, e.g. login {everyone[0].login}")
    wanted = [s.account for s in everyone[-2:]][::-1]
    if wanted:
        try:
            got = [s.account for s in run.bridge.get_states(wanted)]
            if got == wanted:
                run.add("getStates (a list)", PASS, f"accounts {wanted} returned as asked")
            else:
                run.add("getStates (a list)", FAIL, f"asked for accounts {wanted}, got {got}",
                        "getStates must return exactly the listed accounts, in the given order.")
        except StarfaceError as exc:
            run.add("getStates (a list)", FAIL, str(exc), "getStates must accept a list of account ids.")
    unknown = max([s.account for s in everyone] + [0]) + 100_000
    try:
        states = run.bridge.get_states([unknown])
        run.add("getStates (unknown account)", FAIL, f"account {unknown} does not exist, yet the bridge "
                f"answered {len(states)} state(s)", "An unknown account must end in fault 404 "
                "(ResolveUserData finds none).")
    except BridgeUnknownAccount:
        run.add("getStates (unknown account)", PASS, f"account {unknown}: fault 404 as the contract says")
    except StarfaceError as exc:
        run.add("getStates (unknown account)", FAIL, str(exc), "An unknown account must end in fault 404.")
    return everyone


def _test_user(run: _Run, everyone: list[BridgeUserState], login: str | None) -> BridgeUserState | None:
    if login is None:
        return None
    user = next((s for s in everyone if s.login == login), None)
    if user is None and everyone:
        run.add("test user", FAIL, f"no STARFACE user with login '{login}' among the {len(everyone)} users "
                "getStates returned", "Give the login id (Login-ID) of an existing user: --test-user LOGIN.")
    return user


def _read_one(run: _Run, account: int) -> BridgeUserState:
    states = run.bridge.get_states([account])
    if len(states) != 1:
        raise StarfaceProtocolError(f"getStates([{account}]) returned {len(states)} states")
    return states[0]


def _chat_round_trip(run: _Run, user: BridgeUserState | None) -> None:
    name = "setChatStatus round trip"
    if user is None:
        run.add(name, SKIP, "no test user: give --test-user LOGIN (the user sees a test text for a moment)")
        return
    target = ChatPresence.AWAY if user.chat_presence is not ChatPresence.AWAY else ChatPresence.AVAILABLE
    text = f"{TEST_TEXT} {_secrets.token_hex(3)}"
    restored = False
    try:
        answer = run.bridge.set_chat_status(user.account, target, text)
        seen = _read_one(run, user.account)
        run.bridge.set_chat_status(user.account, user.chat_presence, user.chat_presence_message)
        back = _read_one(run, user.account)
        restored = True
        problems = []
        if (answer.chat_presence, answer.chat_presence_message) != (target, text):
            problems.append(f"setChatStatus answered {answer.chat_presence}/'{answer.chat_presence_message}'")
        if (seen.chat_presence, seen.chat_presence_message) != (target, text):
            problems.append(f"getStates then showed {seen.chat_presence}/'{seen.chat_presence_message}'")
        before = (user.chat_presence, user.chat_presence_message)
        if (back.chat_presence, back.chat_presence_message) != before:
            problems.append(f"restoring left {back.chat_presence}/'{back.chat_presence_message}'")
        if problems:
            run.add(name, FAIL, f"set {target}/'{text}' on {user.login}: " + "; ".join(problems),
                    "setChatStatus must set the presence (Java function on the user state, "
                    "NewUserStateEvent) and the text (SetChatPresenceMessage); see docs/starface-bridge.md.")
        else:
            run.add(name, PASS, f"{user.login}: set {target}/'{text}', read back, restored "
                    f"{user.chat_presence}/'{user.chat_presence_message}'")
    except StarfaceError as exc:
        run.add(name, FAIL, str(exc), "setChatStatus must accept account, presence and message.")
    finally:
        if not restored:
            with contextlib.suppress(StarfaceError):  # reported above; the admin restores by hand
                run.bridge.set_chat_status(user.account, user.chat_presence, user.chat_presence_message)


def _telephony_round_trip(run: _Run, user: BridgeUserState | None) -> None:
    name = "setTelephonyStatus round trip"
    if user is None:
        run.add(name, SKIP, "no test user: give --test-user LOGIN")
        return
    if user.telephony_state is not TelephonyState.AVAILABLE:
        run.add(name, SKIP, f"{user.login} is {user.telephony_state} (on the phone?): try again when the "
                "user is free, or name another test user")
        return
    restored = False
    try:
        answer = run.bridge.set_telephony_status(user.account, TelephonyState.ACTIVE)
        seen = _read_one(run, user.account).telephony_state
        run.bridge.set_telephony_status(user.account, TelephonyState.AVAILABLE)
        back = _read_one(run, user.account).telephony_state
        restored = True
        if (answer, seen, back) == (TelephonyState.ACTIVE, TelephonyState.ACTIVE, TelephonyState.AVAILABLE):
            run.add(name, PASS, f"{user.login}: ACTIVE set, read back, AVAILABLE restored")
        else:
            run.add(name, FAIL, f"{user.login}: answered {answer}, read {seen}, after restore {back}",
                    "setTelephonyStatus must call SetUserTelephonyState(account, state).")
    except StarfaceError as exc:
        run.add(name, FAIL, str(exc), "setTelephonyStatus must accept ACTIVE and AVAILABLE.")
    finally:
        if not restored:
            with contextlib.suppress(StarfaceError):
                run.bridge.set_telephony_status(user.account, TelephonyState.AVAILABLE)


def _test_event(run: _Run, info: BridgeInfo, webhook_url: str, wait_test_event: WaitTestEvent,
                event_timeout: float) -> dict[str, Any] | None:
    name = "test event via webhook"
    if info.version == "1":
        run.add(name, SKIP, "the bridge speaks contract 1.0, which has no sendTestEvent",
                "Update the bridge module to contract 1.1 to have the webhook path checked.")
        return None
    nonce = _secrets.token_urlsafe(16)
    started = time.time()
    try:
        sent = run.bridge.send_test_event(nonce)
    except StarfaceError as exc:
        run.add(name, FAIL, str(exc), "sendTestEvent must POST a signed event of type 'test' with the "
                "given nonce to the module's webhookUrl (docs/starface-bridge.md, contract 1.1).")
        return None
    # The bridge posts synchronously: a refusal it reports is final, so only a 2xx is worth waiting for.
    refused = sent.sent and not 200 <= sent.status < 300
    arrival = wait_test_event(nonce, 0.0 if refused else event_timeout)
    if arrival is not None:
        took = max(0.0, float(arrival["receivedAt"]) - started)
        run.add(name, PASS, f"signed test event {arrival['eventId']} arrived and verified after "
                f"{took * 1000:.0f} ms")
        return arrival
    run.add(name, FAIL, _why_no_event(sent.sent, sent.status, sent.answer, sent.webhook_url, webhook_url,
                                      event_timeout), _event_fix(run, sent.status, sent.answer,
                                                                 sent.webhook_url, webhook_url))
    return None


def _why_no_event(sent: bool, status: int, answer: str, url: str, expected: str, timeout: float) -> str:
    if not sent:
        return f"the bridge could not deliver to {url or '(no webhookUrl)'}: {answer or 'no answer'}"
    return (f"no verified test event arrived within {timeout:g} s; the bridge posted to {url} and our "
            f"service answered HTTP {status}: {answer or '(empty)'}")


def _event_fix(run: _Run, status: int, answer: str, url: str, expected: str) -> str:
    where = f"STARFACE {_module_page(run.instance)} > 'webhookUrl'"
    lowered = answer.lower()
    if url.rstrip("/") != expected.rstrip("/") and (status in (0, 404) or urlsplit(url).path
                                                     != urlsplit(expected).path):
        return f"Set {where} to {expected} (it is {url or 'empty'}). / webhookUrl im Modul korrigieren."
    if status == 0:
        host = urlsplit(expected).netloc
        return (f"The PBX cannot reach {host} over HTTPS: allow outgoing HTTPS (443) from the PBX to "
                f"{host} in the firewall, and check {where}.")
    if "signature header" in lowered:
        return ("The bridge sends events unsigned: its webhook helper must add the header "
                "X-TeamsConnect-Signature: sha256=HMAC_SHA256(secret, timestamp + '.' + body).")
    if "signature does not match" in lowered:
        return (f"The bridge signs with another secret than the tenant's: sign with the module variable "
                f"'secret' ({_module_page(run.instance)}) and enter the same secret in the tenant.")
    if "timestamp" in lowered or "clock" in lowered:
        return ("The bridge stamps events with a wrong time: X-TeamsConnect-Timestamp must be the current "
                "unix time in seconds (currentTimeMillis / 1000) of each attempt. If the clock clause fails "
                "too, set a time server (NTP / Zeitserver) for the PBX.")
    if status == 400:
        return "The test event's body breaks the contract (see the answer): fields eventId, type, nonce, " \
               "occurredAt, origin."
    if 200 <= status < 300:
        return ("Our service accepted the event but this command did not see it: run it with the same "
                "TEAMSCONNECT_REDIS_URL as the web app.")
    return "See docs/starface-bridge.md, 'Events from the bridge to the service'."


def _clock(run: _Run, info: BridgeInfo, arrival: dict[str, Any] | None) -> None:
    name = "clock"
    if info.pbx_time_ms is not None and info.sent_at is not None and info.received_at is not None:
        ours = (info.sent_at + info.received_at) / 2
        skew = info.pbx_time_ms / 1000 - ours
        margin = (info.received_at - info.sent_at) / 2
        source = "ping"
    elif arrival is not None:
        skew = float(arrival["occurredAt"]) - float(arrival["receivedAt"])
        margin, source = 1.0, "test event"
    else:
        run.add(name, SKIP, "the bridge reports no time (contract 1.0) and no test event arrived")
        return
    direction = "ahead of" if skew > 0 else "behind"
    seen = f"PBX clock {abs(skew):.1f} s {direction} ours (+/- {margin:.2f} s, from {source})"
    if abs(skew) - margin <= MAX_CLOCK_SKEW_S:
        run.add(name, PASS, seen)
        return
    refused = " - events are refused beyond 300 s" if abs(skew) > 300 else \
        " - events are still accepted (up to 300 s), but call times are off"
    run.add(name, FAIL, seen + refused, "Set a time server for the PBX (STARFACE admin: Zeitserver / NTP) "
            "so its clock follows UTC; the service allows 300 s for events.")
