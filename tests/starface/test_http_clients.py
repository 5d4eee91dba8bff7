"""A STARFACE client spreads its requests over small httpx pools (transports in production, clients in
the benchmark), one per thread (connectors/http_clients.py)."""

from __future__ import annotations

import threading

import httpx

from connectors.http_clients import PER_CLIENT, ClientsByThread, transports_for


def test_each_thread_keeps_one_client_and_threads_are_spread_round_robin() -> None:
    built: list[httpx.Limits] = []

    def build(limits: httpx.Limits) -> httpx.Client:
        built.append(limits)
        return httpx.Client(limits=limits)

    clients = ClientsByThread(build, in_flight=32)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        first, again = clients.client(), clients.client()
        with lock:
            seen.append((id(first), id(again)))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    clients.close()

    assert len(clients) == 32 // PER_CLIENT
    assert all(limits.max_keepalive_connections == PER_CLIENT for limits in built)
    assert all(first == again for first, again in seen)  # a thread keeps its client
    per_client = {client_id: sum(1 for first, _ in seen if first == client_id) for client_id, _ in seen}
    assert sorted(per_client.values()) == [2] * (32 // PER_CLIENT)  # 16 threads over 8 clients, 2 each


def test_a_small_limit_is_one_client_with_that_many_connections() -> None:
    clients = ClientsByThread(lambda limits: httpx.Client(limits=limits), in_flight=2)
    try:
        assert len(clients) == 1
        assert clients.client() is clients.client()
    finally:
        clients.close()


def test_a_starface_client_gets_small_transports_or_the_one_a_test_gives() -> None:
    split = transports_for(True, 32)
    given = httpx.HTTPTransport()
    alone = transports_for(True, 32, given)
    try:
        assert len(split) == 32 // PER_CLIENT and isinstance(split.client(), httpx.HTTPTransport)
        assert len(alone) == 1 and alone.client() is given  # not 8 references to close 8 times
    finally:
        split.close()
        alone.close()
