"""Streaming through the proxy: bodies are never buffered, disconnects propagate, and 1 GiB
each way passes with bounded gateway memory."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.integration.servers import (
    Harness,
    Upstream,
    gateway_settings,
    peak_rss_kib,
    run_subprocess,
    run_uvicorn,
)

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
GiB = 1024 * MiB
UPSTREAM = Upstream()


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    with run_uvicorn(UPSTREAM) as upstream:
        harness = Harness(gateway_settings([{"name": "a", "target": upstream}]))
        with run_uvicorn(harness) as url:
            yield url


@pytest.fixture(autouse=True)
def _fresh_capture() -> None:
    UPSTREAM.reset()


def download(base: str, size: int, *, sized: bool) -> int:
    received = 0
    with httpx.stream("GET", f"{base}/stream?size={size}&length={'1' if sized else ''}",
                      headers={"host": "gw.test"}, timeout=60) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw(MiB):
            assert chunk.count(0xA5) == len(chunk)
            received += len(chunk)
    return received


def body(size: int, piece: int = MiB) -> Iterator[bytes]:
    block = b"\x5a" * piece
    for offset in range(0, size, piece):
        yield block[: min(piece, size - offset)]


@pytest.mark.parametrize("sized", [True, False], ids=["content-length", "chunked"])
def test_download_streams(gateway: str, sized: bool) -> None:
    assert download(gateway, 64 * MiB + 7, sized=sized) == 64 * MiB + 7


@pytest.mark.parametrize("sized", [True, False], ids=["content-length", "chunked"])
def test_upload_streams(gateway: str, sized: bool) -> None:
    size = 64 * MiB + 7
    headers = {"host": "gw.test"}
    if sized:
        headers["content-length"] = str(size)
    response = httpx.post(gateway + "/upload", content=body(size), headers=headers, timeout=60)
    assert response.json()["body_size"] == size
    (seen,) = UPSTREAM.seen
    assert seen.values("content-length") == ([str(size)] if sized else [])


def test_client_disconnect_stops_the_upstream_stream(gateway: str) -> None:
    """A client that leaves mid-download does not keep the upstream streaming."""
    port = int(gateway.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /stream?size=1073741824&slow=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.recv(65536)
    deadline = time.monotonic() + 10
    while UPSTREAM.aborted_streams == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert UPSTREAM.aborted_streams == 1


def test_client_disconnect_mid_upload_leaves_the_gateway_healthy(gateway: str) -> None:
    port = int(gateway.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 10000000\r\n\r\n")
        sock.sendall(b"x" * 100_000)
    time.sleep(0.2)
    response = httpx.post(gateway + "/upload", content=b"ok", headers={"host": "gw.test"})
    assert response.json()["body_size"] == 2


def _raw_upload(base: str, size: int) -> bytes:
    port = int(base.rsplit(":", 1)[1])
    block = memoryview(b"\x5a" * (4 * MiB))
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(f"POST /upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {size}\r\n"
                     "Connection: close\r\n\r\n".encode())
        for offset in range(0, size, len(block)):
            sock.sendall(block[: min(len(block), size - offset)])
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def _raw_download(base: str, size: int) -> int:
    port = int(base.rsplit(":", 1)[1])
    buffer = bytearray(4 * MiB)
    received = 0
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(f"GET /stream?size={size}&length=1 HTTP/1.1\r\nHost: gw.test\r\n"
                     "Connection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        received = len(head.split(b"\r\n\r\n", 1)[1])
        while n := sock.recv_into(buffer):
            received += n
    return received


@pytest.mark.slow
def test_one_gib_each_way_with_bounded_gateway_memory() -> None:
    """1 GiB up and 1 GiB down (sized and chunked) through a gateway process whose peak RSS
    grows by less than 200 MB: nothing is buffered whole."""
    with run_subprocess("upstream") as (upstream, _), run_subprocess(
        "gateway", {"server": {"public_origins": ["http://gw.test"]},
                    "upstreams": [{"name": "a", "target": upstream}]},
    ) as (gateway, pid):
        download(gateway, MiB, sized=True)  # warm up: sessions, imports, first buffers
        _, baseline = peak_rss_kib(pid)
        assert b'"body_size": 1073741824' in _raw_upload(gateway, GiB)
        assert _raw_download(gateway, GiB) == GiB
        assert download(gateway, GiB, sized=False) == GiB
        response = httpx.post(gateway + "/upload", content=body(GiB, 4 * MiB),
                              headers={"host": "gw.test"}, timeout=120)
        assert response.json()["body_size"] == GiB
        peak, _ = peak_rss_kib(pid)
    growth_mb = (peak - baseline) * 1024 / 1e6
    print(f"gateway RSS baseline {baseline} KiB, peak {peak} KiB, growth {growth_mb:.1f} MB")
    assert growth_mb < 200
