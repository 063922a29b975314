"""Real servers for integration tests.

- :func:`run_uvicorn` runs an ASGI app on a real uvicorn (httptools, uvloop, websockets by
  default, ``proxy_headers`` off as in production) on a free 127.0.0.1 port in a background
  thread and yields its base URL.
- :func:`run_subprocess` runs the upstream or the gateway harness in its own process (for
  memory measurements) and yields ``(base_url, pid)``.
- :class:`Upstream` (from ``upstream.py``) is a capture app: it records what reached it and can
  echo, stream, sleep, set cookies, redirect, abort and echo WebSockets.
- :class:`Harness` is the gateway minus sessions: guard, router and proxy with a fixed identity.
- :func:`raw_exchange` talks to a server over a raw socket, for payloads no client library
  would send.

Run as ``python -m tests.integration.servers {upstream|gateway} [settings-json]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from tests.integration.upstream import Upstream

from sekisho.config import Settings, validate_settings
from sekisho.errors import ProxyError
from sekisho.gateway.clientip import ClientIP
from sekisho.gateway.errorpages import send_error
from sekisho.gateway.guard import Guard
from sekisho.gateway.identity import Identity
from sekisho.gateway.proxy import UpstreamProxy
from sekisho.gateway.routing import Router

REPO = Path(__file__).resolve().parents[2]
ALICE = Identity(
    username="alice", groups=("staff", "dev"), email="alice@example.com",
    display_name="Alice Liddell",
)
GATEWAY_COOKIES = frozenset({"sekisho_session", "__Host-sekisho_session", "sekisho_csrf"})

Scope = dict[str, Any]


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    """A port nothing listens on (for 'connection refused')."""
    with bound_socket() as sock:
        return int(sock.getsockname()[1])


@contextmanager
def run_uvicorn(app: Any, *, sock: socket.socket | None = None, **options: Any) -> Iterator[str]:
    """Serve ``app`` on a real uvicorn in a daemon thread; yield ``http://127.0.0.1:<port>``.
    Pass ``sock`` (from :func:`bound_socket`) when the port must be known beforehand."""
    options = {
        "http": "httptools", "ws": "websockets-sansio", "loop": "uvloop", "lifespan": "auto",
        "log_level": "warning", "proxy_headers": False, "access_log": False, **options,
    }
    sock = sock or bound_socket()
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextmanager
def run_subprocess(kind: str, settings: dict[str, Any] | None = None) -> Iterator[tuple[str, int]]:
    """Run the upstream or the gateway harness in a child process; yield (base URL, pid)."""
    args = [sys.executable, "-m", "tests.integration.servers", kind]
    if settings is not None:
        args.append(json.dumps(settings))
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"{kind} did not start: {line!r}")
        base = f"http://127.0.0.1:{int(line.split()[1])}"
        _wait_connectable(base)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _wait_connectable(base: str) -> None:
    port = int(base.rsplit(":", 1)[1])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("server did not accept connections")


@contextmanager
def run_reset_server() -> Iterator[str]:
    """A TCP server that reads a little, then resets the connection (RST, no response)."""
    listener = bound_socket()
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


# --- the gateway harness ------------------------------------------------------------------


def gateway_settings(upstreams: list[dict[str, Any]], **server: Any) -> Settings:
    server.setdefault("public_origins", ["http://gw.test"])
    return validate_settings({"server": server, "upstreams": upstreams})


class Harness:
    """What the real gateway does per request, minus sessions and access rules: guard,
    router, client IP, then the proxy with a fixed identity."""

    def __init__(self, settings: Settings, identity: Identity | None = ALICE) -> None:
        self.identity = identity
        self.guard = Guard(settings)
        self.router = Router(settings.upstreams)
        self.client_ip = ClientIP(settings.server.trusted_proxies)
        self.proxy = UpstreamProxy(
            settings.upstreams, identity=settings.identity, gateway_cookies=GATEWAY_COOKIES,
            trusted_proxies=settings.server.trusted_proxies,
        )

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        websocket = scope["type"] == "websocket"
        try:
            host = self.guard.check(scope)
            route = self.router.match(host, scope["path"])
        except ProxyError as exc:
            await self._refuse(websocket, send, exc.status)
            return
        if route is None:
            await self._refuse(websocket, send, 404)
            return
        client = scope.get("client")
        client_ip = self.client_ip.resolve(client[0] if client else None, scope["headers"])
        relay = self.proxy.websocket if websocket else self.proxy.http
        await relay(scope, receive, send, route=route, identity=self.identity,
                    client_ip=client_ip)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.proxy.start()
            else:
                await self.proxy.close()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    @staticmethod
    async def _refuse(websocket: bool, send: Any, status: int) -> None:
        if websocket:
            await send({"type": "websocket.close", "code": 1008})
        else:
            await send_error(send, status)


# --- raw sockets --------------------------------------------------------------------------


def raw_exchange(base: str, payload: bytes, *, timeout: float = 2.0) -> bytes:
    """Send ``payload`` as is and return all bytes received until the server closes or goes
    quiet for ``timeout`` seconds."""
    port = int(base.rsplit(":", 1)[1])
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def status_of(response: bytes) -> int | None:
    """The status code of the first response in ``response``, or None if nothing came."""
    if not response.startswith(b"HTTP/1."):
        return None
    return int(response.split(b" ", 2)[1])


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 / gw.test: (cert, key) PEM paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("gw.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def peak_rss_kib(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of a process in KiB, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def _main() -> None:
    kind = sys.argv[1]
    if kind == "upstream":
        app: Any = Upstream()
    else:
        app = Harness(validate_settings(json.loads(sys.argv[2])))
    sock = bound_socket()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, http="httptools", ws="websockets-sansio", loop="uvloop",
                            log_level="warning", proxy_headers=False, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    _main()
