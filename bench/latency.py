"""Latency in both directions at the default 2 s cadence, with beat ticking every second.

Teams -> STARFACE: a signed-in user starts a Teams call in the Microsoft simulator at a random moment
(t0 = just before the control request). A watcher polls the STARFACE simulator for the users still
pending (GET /__sim/users/{login}, a few ms per sweep) and stops the clock when the user's DND reads on
(t1 = just after the answer that first shows it). So a sample is the time until the DND write is visible
on the PBX, at most one sweep too long; it includes the wait for the next poll (0-2 s), the poll, the
apply task and its REST writes.

STARFACE -> Teams: a user's STARFACE phone rings and is answered (t0 = just before the answer request,
the event that puts the user on a call). The simulated bridge sends its signed webhook, the web app
queues the event, a worker sets our Teams presence session; the sample ends at the time the Microsoft
simulator logged that user's setPresence request (its own clock: wall time, no offset in the benchmark).

Both directions run at the same time, on top of the steady polling of every user.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench.harness import percentiles, progress
from embedded.stack import Stack
from embedded.waiting import wait_until
from simulators.microsoft import MicrosoftSimControl
from simulators.starface import StarfaceSimControl

DRAIN_S = 15.0  # how long a sample may take after the last change before it counts as missing


@dataclass
class Samples:
    teams_to_starface_ms: list[float] = field(default_factory=list)
    starface_to_teams_ms: list[float] = field(default_factory=list)
    missing_teams_to_starface: int = 0
    missing_starface_to_teams: int = 0
    sweep_ms: list[float] = field(default_factory=list)


def _schedule(n: int, duration_s: float, rng: random.Random) -> list[float]:
    """n moments spread over the window, each at a random phase of its slot (no aliasing with the
    2 s cadence)."""
    slot = duration_s / max(1, n)
    return [i * slot + rng.uniform(0, slot) for i in range(n)]


def _at(start: float, offset: float, stop: threading.Event) -> bool:
    """Waits until ``start + offset`` (a load generator's schedule); False if stopped."""
    return not stop.wait(max(0.0, start + offset - time.monotonic()))


def session_latencies(stack: Stack, answered: dict[int, float]) -> tuple[list[float], int]:
    """STARFACE -> Teams samples: for each answered call (user index -> t0), the time until the Microsoft
    simulator logged that user's first setPresence after t0; and how many never got one."""
    first_set: dict[str, list[float]] = {}
    for entry in stack.ms.requests("setPresence")["entries"]:
        first_set.setdefault(entry["path"].split("/")[3].lower(), []).append(entry["time"])
    latencies, missing = [], 0
    for index, t0 in answered.items():
        after = [at for at in first_set.get(stack.seeds.entra_id(index).lower(), []) if at >= t0]
        if after:
            latencies.append((min(after) - t0) * 1000)
        else:
            missing += 1
    return latencies, missing


def measure_latency(stack: Stack, teams_users: list[int], pbx_users: list[int], duration_s: float,
                    seed: int) -> tuple[dict[str, Any], dict[str, Any], Samples]:
    """Runs both directions for ``duration_s`` (see the module docstring); needs the tick driver running.
    Returns the latency figures, what the pipeline's polling cost meanwhile, and the raw samples."""
    rng = random.Random(seed)
    samples = Samples()
    pending: dict[int, float] = {}
    lock = threading.Lock()
    stop = threading.Event()
    answered: dict[int, float] = {}
    start = time.monotonic()

    def teams_driver() -> None:
        ms = MicrosoftSimControl(stack.microsoft.base_url, verify=stack.microsoft.ca_path)
        try:
            for index, offset in zip(teams_users, _schedule(len(teams_users), duration_s, rng), strict=True):
                if not _at(start, offset, stop):
                    return
                t0 = time.time()
                ms.teams(stack.seeds.entra_id(index), "call_start")
                with lock:
                    pending[index] = t0
        finally:
            ms.close()

    def pbx_driver() -> None:
        pbx = StarfaceSimControl(stack.starface.base_url)
        try:
            for index, offset in zip(pbx_users, _schedule(len(pbx_users), duration_s, rng), strict=True):
                if not _at(start, offset, stop):
                    return
                login = stack.seeds.login(index)
                pbx.ring(login)
                answered[index] = time.time()
                pbx.answer(login)
        finally:
            pbx.close()

    graph_before = stack.ms.count("getPresencesByUserId")
    phase_started = time.time()
    drivers = [threading.Thread(target=teams_driver, name="bench-teams"),
               threading.Thread(target=pbx_driver, name="bench-pbx")]
    for thread in drivers:
        thread.start()
    watcher = StarfaceSimControl(stack.starface.base_url)
    seen = 0
    deadline = time.monotonic() + duration_s + DRAIN_S
    try:
        while (seen < len(teams_users)) and time.monotonic() < deadline:
            sweep_started = time.perf_counter()
            with lock:
                waiting = list(pending.items())
            for index, t0 in waiting:
                if watcher.user_state(stack.seeds.login(index))["dnd"]:
                    samples.teams_to_starface_ms.append((time.time() - t0) * 1000)
                    seen += 1
                    with lock:
                        del pending[index]
            samples.sweep_ms.append((time.perf_counter() - sweep_started) * 1000)
            time.sleep(0.005)  # pacing of the watcher's sweeps
    finally:
        stop.set()
        for thread in drivers:
            thread.join()
        watcher.close()
    samples.missing_teams_to_starface = len(teams_users) - seen
    phase_s = time.time() - phase_started
    graph_polls = stack.ms.count("getPresencesByUserId") - graph_before

    try:
        wait_until(lambda: stack.ms.count("setPresence") >= len(answered), timeout=DRAIN_S,
                 what="a Teams session for every answered STARFACE call", interval=0.25)
    except TimeoutError as exc:
        progress(f"latency: {exc}")
    samples.starface_to_teams_ms, samples.missing_starface_to_teams = session_latencies(stack, answered)

    result = {
        "teams_to_starface": {
            **percentiles(samples.teams_to_starface_ms), "missing": samples.missing_teams_to_starface,
            "measured": "Teams call started in the Microsoft simulator -> STARFACE simulator shows DND on "
                        f"(watcher sweep p50 {percentiles(samples.sweep_ms)['p50']} ms)",
        },
        "starface_to_teams": {
            **percentiles(samples.starface_to_teams_ms), "missing": samples.missing_starface_to_teams,
            "measured": "STARFACE call answered in the STARFACE simulator -> setPresence logged by the "
                        "Microsoft simulator (webhook, web app, events queue, worker, Graph)",
        },
    }
    return result, {"phase_s": phase_s, "graph_polls": graph_polls}, samples
