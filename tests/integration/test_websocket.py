"""WebSocket proxying over the real network (PX-01, PX-02, PX-08)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from tests.integration.servers import Harness, Upstream, free_port, gateway_settings, run_uvicorn
from yarl import URL

pytestmark = pytest.mark.integration

UPSTREAM = Upstream()


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    with run_uvicorn(UPSTREAM) as upstream:
        settings = gateway_settings([
            {"name": "a", "target": upstream},
            {"name": "nows", "target": upstream, "path_prefix": "/nows", "websocket": False},
            {"name": "down", "target": f"http://127.0.0.1:{free_port()}", "path_prefix": "/down"},
        ])
        with run_uvicorn(Harness(settings)) as url:
            yield url


@pytest.fixture(autouse=True)
def _fresh_capture() -> None:
    UPSTREAM.reset()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def connect(session: aiohttp.ClientSession, gateway: str, path: str = "/ws",
            **kw: object) -> aiohttp.client._WSRequestContextManager:
    headers = {"Host": "gw.test", **kw.pop("headers", {})}  # type: ignore[dict-item]
    url = URL(gateway + path, encoded=True)  # as written: no dot-segment normalisation
    return session.ws_connect(url, headers=headers, **kw)  # type: ignore[arg-type]


async def test_echo_with_identity(gateway: str, session: aiohttp.ClientSession) -> None:
    """PX-01: the upstream handshake carries exactly one Remote-User, the gateway's, however the
    client spoofed it; text and binary frames pass both ways."""
    spoofed = {"Remote-User": "admin", "X_Remote_User": "admin", "X-Forwarded-Host": "evil"}
    async with connect(session, gateway, headers=spoofed) as ws:
        hello = json.loads(await ws.receive_str(timeout=5))
        names = [k for k, _ in hello["headers"]]
        values = dict(hello["headers"])
        assert [v for k, v in hello["headers"] if k == "remote-user"] == ["alice"]
        assert values["x-forwarded-host"] == "gw.test"
        assert values["x-forwarded-for"] == "127.0.0.1"
        assert "x_remote_user" not in names
        await ws.send_str("héllo")
        assert await ws.receive_str(timeout=5) == "héllo"
        await ws.send_bytes(b"\x00\x01" * 50000)
        assert await ws.receive_bytes(timeout=5) == b"\x00\x01" * 50000


async def test_subprotocol_is_negotiated(gateway: str, session: aiohttp.ClientSession) -> None:
    async with connect(session, gateway, protocols=("chat.v2", "chat.v1")) as ws:
        assert ws.protocol == "chat.v2"
        hello = json.loads(await ws.receive_str(timeout=5))
        offered = dict(hello["headers"])["sec-websocket-protocol"]
        assert [p.strip() for p in offered.split(",")] == ["chat.v2", "chat.v1"]


async def test_upstream_close_code_reaches_client(
    gateway: str, session: aiohttp.ClientSession
) -> None:
    async with connect(session, gateway) as ws:
        await ws.receive_str(timeout=5)
        await ws.send_str("close:4001")
        message = await ws.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == 4001
        assert message.extra == "bye"


async def test_client_close_code_reaches_upstream(
    gateway: str, session: aiohttp.ClientSession
) -> None:
    async with connect(session, gateway) as ws:
        await ws.receive_str(timeout=5)
        await ws.close(code=4002, message=b"done")
    for _ in range(100):
        if UPSTREAM.ws_closes:
            break
        await asyncio.sleep(0.02)
    assert UPSTREAM.ws_closes == [(4002, "done")]


async def test_websocket_disabled_upstream_is_refused(
    gateway: str, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with connect(session, gateway, "/nows/ws"):
            pass
    assert info.value.status == 403


async def test_unreachable_upstream_is_502(gateway: str, session: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with connect(session, gateway, "/down/ws"):
            pass
    assert info.value.status == 502


async def test_unknown_host_is_refused(gateway: str, session: aiohttp.ClientSession) -> None:
    """PX-08: the handshake goes through the Host allowlist too."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with session.ws_connect(gateway + "/ws", headers={"Host": "evil.example"}):
            pass
    assert info.value.status == 403


async def test_traversal_is_refused(gateway: str, session: aiohttp.ClientSession) -> None:
    """PX-06: the same raw-path rules as HTTP."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with connect(session, gateway, "/x/%2e%2e/ws"):
            pass
    assert info.value.status in (400, 403)
