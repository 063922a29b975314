"""Two gateway processes sharing one Redis and one PostgreSQL (RL-04, RL-05, RL-08, SE-06).

Each replica is its own OS process on the real CLI path (``sekisho -c <its own config> serve``:
settings, secrets, logging, uvicorn with the production options) with two test hooks,
installed when this module runs as a program:

- a controllable clock: wall time plus an offset read from a file both replicas share, given
  to ``create_app`` and to the ``limits`` Redis bridge (which reads ``time.time()`` itself),
  so a test moves time forward for both at once and never sleeps through a wait;
- ``GET /__test/stats``: the replica's Argon2 counter, to show a refused attempt ran no hash.

Redis: the replicas get a database of their own, claimed with a key (``SET NX``) among 1-14
and flushed before and after, so tests running beside these (on database 15, which
``redis_url`` flushes) neither see nor wipe their keys. PostgreSQL: a fresh database per test
(``pg_url``). The upstream is a capture app in this process.

Run as ``python -m tests.integration.test_replicas_redis CONFIG CLOCK_FILE`` (the fixture does).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.servers import REPO, free_port, run_uvicorn
from tests.integration.stack import PASSWORD, Capture
from tests.integration.test_login_flow import HTML, csrf_from

WRONG = "definitely not the password"
STATS = "/__test/stats"
CLAIM_KEY = "sekisho-test:replicas-claim"


# --- the replica process (this module run as a program) ----------------------------------------


class FileClock:
    """``time.time()`` plus the offset in seconds written in ``path``. Callable like
    ``time.time``, and a stand-in for the ``time`` module (``.time()``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __call__(self) -> float:
        return time.time() + float(self.path.read_text() or "0")

    def time(self) -> float:
        return self()


def serve_replica(config: str, clock_file: str) -> int:
    import limits.aio.storage.redis.redispy

    from sekisho.cli import main
    from sekisho.cli import serve as serve_command

    clock = FileClock(clock_file)
    limits.aio.storage.redis.redispy.time = clock  # type: ignore[assignment]
    real_create_app = serve_command.create_app

    def create_app(settings: Any, *args: Any, **kwargs: Any) -> Any:
        app = real_create_app(settings, *args, clock=clock, **kwargs)
        passwords = app.services.passwords

        async def with_stats(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == STATS:
                body = json.dumps({"hashes": passwords.hashes_computed}).encode()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
            await app(scope, receive, send)

        return with_stats

    serve_command.create_app = create_app  # type: ignore[assignment]
    return main(["-c", config, "serve"])


# --- the pair of replicas ------------------------------------------------------------------------


@dataclass
class Replica:
    name: str
    base: str
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, source: str = "127.0.0.1") -> httpx.Client:
        """A client whose TCP peer address (the gateway's client IP) is ``source``."""
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=15,
                            transport=httpx.HTTPTransport(local_address=source))

    def hashes(self) -> int:
        return int(httpx.get(self.base + STATS, timeout=10).json()["hashes"])

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.hashes()
                return
            except (httpx.HTTPError, ValueError):
                time.sleep(0.1)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"replica {self.name} did not start:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@dataclass
class Pair:
    a: Replica
    b: Replica
    config: Path  # replica a's; the CLI uses it (same database, state and secrets as b's)
    clock_file: Path
    upstream: Capture
    offset: float = field(default=0.0)

    def advance(self, seconds: float) -> None:
        """Move both replicas' clocks forward."""
        self.offset += seconds
        self.clock_file.write_text(repr(self.offset))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sekisho", "-c", str(self.config), *args],
                              capture_output=True, text=True, env=_clean_env(), timeout=60,
                              check=False)


def _clean_env() -> dict[str, str]:
    # SEKISHO_* variables would override the generated configs.
    return {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}


@contextmanager
def own_redis_database(redis_url: str) -> Iterator[str]:
    """A Redis database (1-14) nobody else holds: claimed with SET NX, flushed, given back."""
    import redis

    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    token = uuid.uuid4().hex
    for number in range(14, 0, -1):
        url = f"{base}/{number}"
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            if client.set(CLAIM_KEY, token, nx=True, ex=900) and client.dbsize() == 1:
                break
            if client.get(CLAIM_KEY) == token.encode():
                client.delete(CLAIM_KEY)  # ours, but the database holds other keys
        finally:
            client.close()
    else:
        pytest.fail("no free Redis database among 1-14 for the replica tests")
    try:
        yield url
    finally:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            client.flushdb()
        finally:
            client.close()


def _value(value: Any) -> str:
    """A TOML value: strings, numbers, booleans, lists, and tables written inline."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value)


def _toml(sections: dict[str, dict[str, Any]], upstream_port: int) -> str:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_value(value)}" for key, value in values.items()]
    lines += ["[[upstreams]]", 'name = "app"', f'target = "http://127.0.0.1:{upstream_port}"']
    return "\n".join(lines) + "\n"


def _add_alice(db_url: str) -> None:
    from sekisho.auth.passwords import Passwords
    from sekisho.store.db import Database
    from sekisho.store.users import UserRepository

    async def go() -> None:
        db = Database.from_url(db_url)
        passwords = Passwords(profile="owasp-minimum", workers=1)
        try:
            await db.migrate()
            await UserRepository(db).add(username="alice", email="alice@example.com",
                                         display_name="Alice", groups=["staff"],
                                         password_hash=await passwords.hash(PASSWORD))
        finally:
            passwords.close()
            await db.close()

    asyncio.run(go())


MakePair = Callable[..., Pair]


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[MakePair]:
    """``replicas(**ratelimit)``: two running replicas with user ``alice`` over one Redis
    database and one PostgreSQL database, ``[ratelimit]`` overridden as given."""
    from sekisho.config import generate_key

    with ExitStack() as stack:

        def make(**ratelimit: Any) -> Pair:
            state_url = stack.enter_context(own_redis_database(redis_url))
            _add_alice(pg_url)
            upstream = Capture()
            upstream_base = stack.enter_context(run_uvicorn(upstream, lifespan="on"))
            upstream_port = int(upstream_base.rsplit(":", 1)[1])
            clock_file = tmp_path / "clock"
            clock_file.write_text("0")
            shared = {
                "database": {"url": pg_url}, "state": {"url": state_url},
                "passwords": {"argon2_profile": "owasp-minimum"},
                "session": {"touch_interval": 1},
                "secrets": {"session_key": generate_key(), "data_key": generate_key()},
                "ratelimit": ratelimit,
            }
            started = []
            for name in ("a", "b"):
                port = free_port()
                origins = [f"http://127.0.0.1:{port}"]
                config = tmp_path / f"replica-{name}.toml"
                config.write_text(_toml({
                    "server": {"listen": f"127.0.0.1:{port}", "public_origins": origins},
                    **shared}, upstream_port))
                log = tmp_path / f"replica-{name}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "tests.integration.test_replicas_redis",
                         str(config), str(clock_file)],
                        cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=_clean_env())
                replica = Replica(name, f"http://127.0.0.1:{port}", proc, log)
                stack.callback(replica.stop)
                started.append(replica)
            for replica in started:
                replica.wait_ready()
            return Pair(started[0], started[1], tmp_path / "replica-a.toml", clock_file,
                        upstream)

        yield make


# --- helpers -------------------------------------------------------------------------------------


def login(c: httpx.Client, username: str, password: str) -> httpx.Response:
    page = c.get("/_sekisho/login", params={"prompt": "login"}, headers=HTML)
    return c.post("/_sekisho/login", data={
        "csrf_token": csrf_from(page.text), "username": username, "password": password,
        "next": "/"})


def got_session(response: httpx.Response) -> bool:
    return any(v.startswith("sekisho_session=") and not v.startswith("sekisho_session=;")
               for v in response.headers.get_list("set-cookie"))


def fail_through(pair: Pair, c: httpx.Client, username: str) -> int:
    """One evaluated failure, moving both clocks past the wait first if there is one."""
    response = login(c, username, WRONG)
    if response.status_code == 429:
        pair.advance(int(response.headers["retry-after"]) + 1)
        response = login(c, username, WRONG)
    return response.status_code


# --- the tests -----------------------------------------------------------------------------------


def test_failures_on_both_replicas_add_up_and_the_lock_holds_on_both(replicas: MakePair) -> None:
    """RL-04, RL-08, RL-02: failures through replica a and replica b land on one counter;
    the fifth starts the wait, and both replicas then refuse even the right password with
    429 + Retry-After, evaluating nothing (no hash). Moving the shared clock past the wait
    lets the user in again."""
    pair = replicas()
    with pair.a.client() as a, pair.b.client() as b:
        assert [login(a, "alice", WRONG).status_code for _ in range(2)] == [401, 401]
        assert [login(b, "alice", WRONG).status_code for _ in range(2)] == [401, 401]
        assert login(a, "alice", WRONG).status_code == 401  # the fifth: the wait begins

        for replica, c in ((pair.b, b), (pair.a, a)):
            before = replica.hashes()
            refused = login(c, "alice", PASSWORD)
            assert refused.status_code == 429
            assert 0 < int(refused.headers["retry-after"]) <= 30
            assert not got_session(refused)
            assert replica.hashes() == before

        pair.advance(31)
        assert got_session(login(b, "alice", PASSWORD))
    assert pair.upstream.requests == []


def test_cli_unlock_lifts_a_disable_on_both_replicas(replicas: MakePair) -> None:
    """RL-01, RL-08, AD-02: failures alternating between the replicas disable the password
    at ``disable_after``; both then refuse the right password like any failure (401, no
    hash); one ``sekisho lockouts unlock`` lifts it for both."""
    pair = replicas(free_failures=1, first_delay=30, max_delay=60, disable_after=4)
    with pair.a.client() as a, pair.b.client() as b:
        assert [fail_through(pair, c, "alice") for c in (a, b, a, b)] == [401] * 4
        for replica, c in ((pair.a, a), (pair.b, b)):
            before = replica.hashes()
            locked = login(c, "alice", PASSWORD)
            assert locked.status_code == 401
            assert "Login failed; invalid user ID or password." in locked.text
            assert not got_session(locked)
            assert replica.hashes() == before

        listed = pair.cli("lockouts", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        records = json.loads(listed.stdout)
        # One record, opened at the fourth failure; refusals since are folded into it.
        assert [(r["username"], r["state"]) for r in records] == [("alice", "active")]
        assert records[0]["failure_count"] >= 4
        done = pair.cli("lockouts", "unlock", str(records[0]["id"]), "--reason",
                        "identity checked by phone", "--actor", "test-admin")
        assert done.returncode == 0, done.stderr

        assert got_session(login(a, "alice", PASSWORD))
        assert got_session(login(b, "alice", PASSWORD))


def test_an_address_blocked_through_one_replica_is_blocked_on_the_other(
    replicas: MakePair,
) -> None:
    """RL-05, RL-08, RL-10: failures from 127.0.0.2 through replica a spend its per-address
    budget (5 per 10 minutes here: few enough names that attack mode's distinct-username
    detector, at 10, stays out of it); replica b then refuses that address, even with the
    right password (429 + Retry-After, no hash), while another address gets in. Past the
    window both accept it again."""
    pair = replicas(ip={"short": "5/10 minutes", "long": "50/day"})
    with pair.a.client("127.0.0.2") as a:
        assert [login(a, f"nobody{i}", WRONG).status_code for i in range(5)] == [401] * 5
    with pair.b.client("127.0.0.2") as b, pair.b.client("127.0.0.3") as other:
        before = pair.b.hashes()
        blocked = login(b, "alice", PASSWORD)
        assert blocked.status_code == 429
        wait = int(blocked.headers["retry-after"])
        assert 0 < wait <= 600
        assert pair.b.hashes() == before
        assert got_session(login(other, "alice", PASSWORD))
        pair.advance(wait + 1)
        assert got_session(login(b, "alice", PASSWORD))
    with pair.a.client("127.0.0.2") as a:
        assert got_session(login(a, "alice", PASSWORD))


def test_a_session_works_on_both_and_logout_on_one_ends_it_on_the_other(
    replicas: MakePair,
) -> None:
    """SE-06, RL-08 (shared state): a session made through replica a is honoured by
    replica b (which caches it); logging out through a revokes it on b within a second
    (Redis pub/sub invalidation), polled, not slept."""
    pair = replicas()
    with pair.a.client() as a:
        assert got_session(login(a, "alice", PASSWORD))
        cookie = a.cookies.get("sekisho_session")
        assert cookie
        with pair.b.client() as b:
            b.cookies.set("sekisho_session", cookie)
            inside = b.get("/inside")
            assert inside.status_code == 200
            assert pair.upstream.header(0, "remote-user") == ["alice"]
            assert b.get("/inside").status_code == 200  # served from b's cache now

            token = csrf_from(a.get("/_sekisho/", headers=HTML).text)
            assert a.post("/_sekisho/logout", data={"csrf_token": token}).status_code == 303
            deadline = time.monotonic() + 1.0
            status = 200
            while status == 200 and time.monotonic() < deadline:
                status = b.get("/inside", headers=HTML).status_code
            assert status == 302
            assert b.get("/inside", headers=HTML).headers["location"].startswith(
                "/_sekisho/login")
    assert len(pair.upstream.requests) == 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(serve_replica(sys.argv[1], sys.argv[2]))
