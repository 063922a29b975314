"""`sekisho demo` as a newcomer runs it: start, read the printed password, log in, see identity."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.integration.servers import free_port


def test_demo_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)}
    env = {k: v for k, v in env.items() if not k.startswith("SEKISHO_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sekisho", "demo", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        deadline = time.monotonic() + 60
        while "Press Ctrl+C" not in banner and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            banner += line
        password = re.search(r"password\s+(\S+)", banner)
        assert password, "the demo printed no password"
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(f"{base}/_sekisho/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as c:
            page = c.get("/", headers={"accept": "text/html"})
            assert "/_sekisho/login" in str(page.url)
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token
            home = c.post("/_sekisho/login", data={
                "csrf_token": token.group(1), "username": "demo",
                "password": password.group(1), "next": "/"})
            assert home.status_code == 200
            assert "Hello, <strong>Demo User</strong> (<code>demo</code>)" in home.text
            assert "staff" in home.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert not list(tmp_path.glob("sekisho-demo-*")), "the demo left its temporary directory"
