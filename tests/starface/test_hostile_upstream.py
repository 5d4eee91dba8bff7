"""A PBX (or something posing as one) that answers garbage: the REST client raises its typed StarfaceError,
never a KeyError, TypeError or RecursionError that would surface as a traceback (issue 13, fuzz cases).

A real HTTP server on 127.0.0.1 logs the client in and answers every other request with the body under
test, the way a broken PBX or a proxy error page would.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.starface import StarfaceError, StarfaceRestClient


class _Pbx(BaseHTTPRequestHandler):
    body = b"[]"
    status = 200
    content_type = "application/json"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path == "/rest/login" and self.command == "GET":
            status, body = 200, b'{"loginType": "Internal", "nonce": "n-1"}'
        elif self.path == "/rest/login" and self.command == "POST":
            status, body = 200, b'{"token": "t-1"}'
        else:
            status, body = type(self).status, type(self).body
        self.send_response(status)
        self.send_header("Content-Type", type(self).content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pbx_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pbx)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _call_everything(url: str) -> None:
    with StarfaceRestClient(url, "0001", "pbx-password", timeout=2.0) as client:
        for call in (client.list_users, client.list_groups, lambda: client.group_member_ids(7),
                     lambda: client.get_dnd(17), lambda: client.set_dnd(17, True)):
            with contextlib.suppress(StarfaceError):
                call()


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "login", "email", "firstName", "familyName", "groupname", "assigned",
                         "assignableUsers", "doNotDisturb", "callWaiting", "displayNumberId",
                         "primaryPhoneId", "x"]),
        inner, max_size=6),
    max_leaves=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_json.map(lambda value: __import__("json").dumps(value).encode()) | st.binary(max_size=200),
       status=st.sampled_from([200, 200, 200, 204, 302, 404, 500, 503]))
def test_any_answer_of_the_pbx_is_a_typed_error_or_a_result(pbx_url: str, body: bytes, status: int) -> None:
    _Pbx.body, _Pbx.status = body, status
    _call_everything(pbx_url)


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"id": 1' + b"0" * 5_000 + b"}",
    b"\xff\xfe\x00garbage",
    b"<html><body>502 Bad Gateway</body></html>",
    b'[{"id": 1e400, "login": "1001"}]',
])
def test_pathological_bodies_are_typed_errors(pbx_url: str, body: bytes) -> None:
    _Pbx.body, _Pbx.status = body, 200
    _call_everything(pbx_url)
