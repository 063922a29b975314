"""`sekisho serve` and `sekisho demo`."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import uvicorn

from sekisho.app import create_app, create_demo_user
from sekisho.config import Settings, generate_key, load_secrets, validate_settings
from sekisho.demo_app import demo_app
from sekisho.errors import ConfigError


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (Redis state only)")
    serve.set_defaults(func=run_serve)
    demo = sub.add_parser("demo", help="run the gateway in front of a demo app (embedded defaults)")
    demo.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    demo.set_defaults(func=run_demo, needs_settings=False)


def uvicorn_options() -> dict[str, Any]:
    # The gateway reads X-Forwarded-For itself, from trusted proxies only (PX-03).
    return {
        "loop": "uvloop",
        "http": "httptools",
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,
        "timeout_keep_alive": 75,
        "lifespan": "on",
    }


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    try:
        load_secrets(settings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"sekisho: {problem}", file=sys.stderr)
        return 2
    host, port = settings.server.host_port
    if args.workers > 1:
        if settings.state.url.startswith("memory://"):
            print("sekisho: --workers > 1 needs state.url = redis://... (shared counters and "
                  "sessions)", file=sys.stderr)
            return 2
        uvicorn.run("sekisho.app:app_from_env", factory=True, host=host, port=port,
                    workers=args.workers, **uvicorn_options())
        return 0
    uvicorn.run(create_app(settings), host=host, port=port, **uvicorn_options())
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo_settings(*, workdir: Path, port: int, upstream_port: int) -> Settings:
    return validate_settings({
        "server": {"listen": f"127.0.0.1:{port}", "public_origins": [f"http://127.0.0.1:{port}",
                                                                       f"http://localhost:{port}"]},
        "upstreams": [{"name": "demo", "target": f"http://127.0.0.1:{upstream_port}"}],
        "database": {"url": f"sqlite:///{workdir / 'sekisho.sqlite3'}"},
        "passwords": {"argon2_profile": "rfc9106-low-memory"},
        "secrets": {"session_key": generate_key(), "data_key": generate_key()},
    })


def run_demo(args: argparse.Namespace, _settings: Settings | None) -> int:
    with tempfile.TemporaryDirectory(prefix="sekisho-demo-") as tmp:
        upstream_port = _free_port()
        settings = demo_settings(workdir=Path(tmp), port=args.port, upstream_port=upstream_port)
        password = secrets.token_urlsafe(15)
        asyncio.run(create_demo_user(settings, username="demo", password=password))
        origin = settings.server.public_origins[0]
        print("\n  Sekisho demo: the gateway in front of a demo app (SQLite, in-memory state)\n"
              f"    open      {origin}/\n    user      demo\n    password  {password}\n"
              "  The password is shown once. Press Ctrl+C to stop.\n", flush=True)
        _serve_demo(settings, upstream_port)
    return 0


def _serve_demo(settings: Settings, upstream_port: int) -> None:
    # The demo app runs in a thread (no signal handlers there); Ctrl+C stops the gateway in
    # the main thread, then the app.
    upstream = uvicorn.Server(uvicorn.Config(demo_app, host="127.0.0.1", port=upstream_port,
                                             log_level="warning", loop="asyncio"))
    thread = threading.Thread(target=upstream.run, name="demo-app", daemon=True)
    thread.start()
    host, port = settings.server.host_port
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning",
                    **uvicorn_options())
    finally:
        upstream.should_exit = True
        thread.join(timeout=10)
