"""Set-up for bench/stuffing.py: the gateway's config, the accounts, the combo list, the
addresses. Nothing here prints a password; the files holding them are private to the
workspace (mode 600) and go away with it.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import make_url

from sekisho.auth.passwords import Passwords
from sekisho.config import generate_key
from sekisho.store.db import Database
from sekisho.store.tables import users

DISTINCT_PASSWORDS = 8  # hashed once each with the real profile, shared by the accounts
FIRST_OCTET_BASE = 16  # sources live in 127.16.0.0 and up, clear of 127.0.0.1
LEGIT_HOST_BASE = 200  # legit users are .200 and up in the attackers' own /24s


@dataclass(frozen=True)
class Plan:
    accounts: int
    combos: int
    sources: int
    subnets: int
    legit: int
    valid_fraction: float
    unknown_fraction: float
    seed: int

    def check(self) -> None:
        if self.legit > self.accounts:
            raise ValueError("--legit must be <= --accounts")
        if not 1 <= self.subnets <= self.sources:
            raise ValueError("--subnets must be between 1 and --sources")
        if -(-self.sources // self.subnets) > LEGIT_HOST_BASE - 1:
            raise ValueError(f"at most {LEGIT_HOST_BASE - 1} sources per /24: raise --subnets")
        if -(-self.legit // self.subnets) > 255 - LEGIT_HOST_BASE:
            raise ValueError("too many legit users per /24: raise --subnets")
        if not 0 <= self.valid_fraction < 1 or not 0 <= self.unknown_fraction < 1:
            raise ValueError("fractions must be in [0, 1)")
        if self.combos * self.valid_fraction > self.accounts:
            raise ValueError("more valid pairs than accounts: lower --valid-fraction")


def _address(subnet: int, host: int) -> str:
    return f"127.{FIRST_OCTET_BASE + subnet // 256}.{subnet % 256}.{host}"


def attack_sources(plan: Plan) -> list[str]:
    """Source ``i`` sits in /24 number ``i % subnets``: the addresses spread evenly."""
    return [_address(i % plan.subnets, 1 + i // plan.subnets) for i in range(plan.sources)]


def legit_sources(plan: Plan) -> list[str]:
    """Legit user ``u`` shares a /24 with attackers: its address budgets get spent by them."""
    return [_address(u % plan.subnets, LEGIT_HOST_BASE + u // plan.subnets)
            for u in range(plan.legit)]


def username(index: int) -> str:
    return f"user{index:05d}"


def write_private(path: Path, text: str) -> Path:
    path.touch(mode=0o600)
    path.write_text(text)
    return path


def write_config(directory: Path, *, port: int, upstream_port: int, database_url: str,
                 state_url: str, profile: str) -> Path:
    conf = directory / "gateway.toml"
    write_private(conf, (
        f'[server]\nlisten = "127.0.0.1:{port}"\npublic_origins = ["http://127.0.0.1:{port}"]\n'
        f'[[upstreams]]\nname = "app"\ntarget = "http://127.0.0.1:{upstream_port}"\n'
        f'[database]\nurl = "{database_url}"\n[state]\nurl = "{state_url}"\n'
        f'[passwords]\nargon2_profile = "{profile}"\n'
        f'[secrets]\nsession_key = "{generate_key()}"\ndata_key = "{generate_key()}"\n'))
    return conf


# --- accounts and the combo list -------------------------------------------------------------


async def _create_accounts(database_url: str, passwords: list[str], plan: Plan,
                           profile: str) -> None:
    hasher = Passwords(profile=profile)
    try:
        hashes = await asyncio.gather(*(hasher.hash(p) for p in passwords))
    finally:
        hasher.close()
    db = Database.from_url(database_url)
    now = datetime.now(UTC)
    rows = [{"username": username(i), "email": f"{username(i)}@bench.test",
             "display_name": username(i), "disabled": False,
             "password_hash": hashes[i % len(hashes)], "password_changed_at": now,
             "compromised": False, "created_at": now, "updated_at": now}
            for i in range(plan.accounts)]
    try:
        await db.migrate()
        async with db.transaction(write=True) as conn:
            await conn.execute(insert(users), rows)
    finally:
        await db.close()


def create_accounts(database_url: str, plan: Plan, *, profile: str) -> list[str]:
    """Creates ``plan.accounts`` users; account ``i`` has password ``pw[i % len(pw)]``.
    Returns ``pw`` (a handful of distinct passwords, each hashed once with ``profile``)."""
    rng = random.SystemRandom()
    pw = [f"{rng.choice('ABCDEFGH')}{secrets.token_urlsafe(15)}" for _ in range(
        DISTINCT_PASSWORDS)]
    asyncio.run(_create_accounts(database_url, pw, plan, profile))
    return pw


def combo_list(plan: Plan, passwords: list[str]) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """The attacker's list: ``plan.combos`` pairs spread evenly over the accounts (and over
    unknown names, ``unknown_fraction`` of them), ``valid_fraction`` of them the account's real
    password (reused elsewhere), each valid pair on a different account; shuffled."""
    rng = random.Random(plan.seed)
    unknown = round(plan.combos * plan.unknown_fraction)
    known = plan.combos - unknown
    valid = round(plan.combos * plan.valid_fraction)
    valid_accounts = set(rng.sample(range(plan.accounts), valid))
    pairs: list[tuple[str, str]] = []
    seen_valid: set[int] = set()
    for j in range(known):
        account = j % plan.accounts
        if account in valid_accounts and account not in seen_valid:
            seen_valid.add(account)
            pairs.append((username(account), passwords[account % len(passwords)]))
        else:
            pairs.append((username(account), _wrong(rng)))
    pairs += [(f"ghost{j:06d}", _wrong(rng)) for j in range(unknown)]
    rng.shuffle(pairs)
    stats = {"pairs": len(pairs), "valid_pairs": len(seen_valid), "unknown_name_pairs": unknown,
             "accounts_targeted": min(known, plan.accounts),
             "pairs_per_account": round(known / plan.accounts, 2)}
    return pairs, stats


def _wrong(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(12))


def write_inputs(directory: Path, plan: Plan, passwords: list[str]) -> dict[str, Any]:
    """The combo list and the legit users' credentials, as files for the client processes."""
    pairs, stats = combo_list(plan, passwords)
    combos = write_private(directory / "combos.tsv",
                           "".join(f"{u}\t{p}\n" for u, p in pairs))
    creds = [{"username": username(u), "password": passwords[u % len(passwords)],
              "source": s} for u, s in enumerate(legit_sources(plan))]
    legit = write_private(directory / "legit.json", json.dumps(creds))
    return {"combos": str(combos), "legit_credentials": str(legit), "list": stats}


# --- PostgreSQL ------------------------------------------------------------------------------


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server of ``admin_url``, dropped afterwards."""
    import asyncpg

    admin = make_url(admin_url).set(drivername="postgresql")
    name = f"sekisho_bench_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False), timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(drivername="postgresql", database=name).render_as_string(
            hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def check_redis_empty(url: str, *, flush: bool) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        if flush:
            client.flushdb()
        elif client.dbsize():
            raise ValueError(f"Redis database {url} is not empty; pass --flush-redis to clear it "
                             "(the gateway's keys have a fixed prefix and would mix)")
    finally:
        client.close()
