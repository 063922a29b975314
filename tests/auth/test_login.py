"""Password login: one failure, one cost, transparent rehash."""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher, extract_parameters

from sekisho.auth.login import LOGIN_FAILED, authenticate
from sekisho.auth.passwords import PROFILES, Passwords
from sekisho.errors import AuthenticationFailed, HasherBusy
from sekisho.store import Database, User, UserRepository

PASSWORD = "correct horse battery staple"


class CountingHasher:
    """Counts Argon2 verifies and hashes on a Passwords object."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.verifies = 0
        self.hashes = 0

    def hash(self, secret: bytes) -> str:
        self.hashes += 1
        return self.inner.hash(secret)

    def verify(self, stored: str, secret: bytes) -> bool:
        self.verifies += 1
        return self.inner.verify(stored, secret)

    def check_needs_rehash(self, stored: str) -> bool:
        return self.inner.check_needs_rehash(stored)


@pytest.fixture
def users(database: Database) -> UserRepository:
    return UserRepository(database)


async def add(
    users: UserRepository, passwords: Passwords, username: str, password: str | None
) -> User:
    stored = await passwords.hash(password) if password is not None else None
    return await users.add(username=username, password_hash=stored)


async def login(
    users: UserRepository, passwords: Passwords, username: str, password: str
) -> User:
    return await authenticate(
        username=username, password=password, users=users, passwords=passwords
    )


async def test_success(users: UserRepository, fast_passwords: Passwords) -> None:
    added = await add(users, fast_passwords, "alice", PASSWORD)
    user = await login(users, fast_passwords, "alice", PASSWORD)
    assert user == added


async def test_username_is_canonicalised(users: UserRepository, fast_passwords: Passwords) -> None:
    await add(users, fast_passwords, "alice", PASSWORD)
    assert (await login(users, fast_passwords, "  ＡＬＩＣＥ ", PASSWORD)).username == "alice"


async def test_one_failure_for_every_case(
    users: UserRepository, fast_passwords: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LF-01: unknown, wrong password, disabled, no password, invalid name: one identical
    failure. LF-02: each costs exactly one Argon2 verify."""
    await add(users, fast_passwords, "alice", PASSWORD)
    disabled = await add(users, fast_passwords, "dora", PASSWORD)
    await users.set_disabled(disabled.id, True)
    await add(users, fast_passwords, "nopass", None)
    counter = CountingHasher(fast_passwords.hasher)
    monkeypatch.setattr(fast_passwords, "hasher", counter)
    cases = [
        ("ghost", PASSWORD),  # unknown
        ("alice", PASSWORD + "!"),  # wrong password
        ("dora", PASSWORD),  # disabled, right password
        ("nopass", PASSWORD),  # no password set
        ("no such\nuser", PASSWORD),  # not even a valid username
        ("nopass", ""),
    ]
    failures = []
    for username, password in cases:
        before = counter.verifies
        with pytest.raises(AuthenticationFailed) as caught:
            await login(users, fast_passwords, username, password)
        assert counter.verifies == before + 1, f"{username!r}: not exactly one verify"
        failures.append(caught.value)
    assert {type(f) for f in failures} == {AuthenticationFailed}
    assert {str(f) for f in failures} == {LOGIN_FAILED}
    assert {f.args for f in failures} == {(LOGIN_FAILED,)}
    assert all(f.__cause__ is None and f.__context__ is None for f in failures)
    assert counter.hashes == 0


async def test_hundred_character_password(
    users: UserRepository, fast_passwords: Passwords
) -> None:
    """PW-02: the full 100 characters are verified; the first 64 or 72 are not enough."""
    password = "".join(random.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(99)) + "Z"
    await add(users, fast_passwords, "alice", password)
    for prefix in (64, 72, 99):
        with pytest.raises(AuthenticationFailed):
            await login(users, fast_passwords, "alice", password[:prefix])
    assert await login(users, fast_passwords, "alice", password)


async def test_nfc_login(users: UserRepository, fast_passwords: Passwords) -> None:
    """PW-04: set with U+00E9, log in with e + U+0301; trailing space or case change fails."""
    await add(users, fast_passwords, "alice", "J\u00e9r\u00f4me likes cr\u00e8me br\u00fbl\u00e9e")
    assert await login(
        users, fast_passwords, "alice", "Je\u0301ro\u0302me likes cre\u0300me bru\u0302le\u0301e"
    )
    for wrong in (
        "J\u00e9r\u00f4me likes cr\u00e8me br\u00fbl\u00e9e ",
        "j\u00e9r\u00f4me likes cr\u00e8me br\u00fbl\u00e9e",
    ):
        with pytest.raises(AuthenticationFailed):
            await login(users, fast_passwords, "alice", wrong)


async def test_over_long_password_fails_without_argon2(
    users: UserRepository, fast_passwords: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ST-05: a 1 MB password is the generic failure, for known and unknown users alike,
    and never reaches Argon2."""
    await add(users, fast_passwords, "alice", PASSWORD)
    counter = CountingHasher(fast_passwords.hasher)
    monkeypatch.setattr(fast_passwords, "hasher", counter)
    for username in ("alice", "ghost"):
        with pytest.raises(AuthenticationFailed, match=LOGIN_FAILED):
            await login(users, fast_passwords, username, "x" * 1_000_000)
    assert counter.verifies == counter.hashes == 0


async def test_hasher_busy_propagates(
    users: UserRepository, fast_passwords: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ST-06: a saturated hasher is 'try later' (503), not a login failure."""
    await add(users, fast_passwords, "alice", PASSWORD)
    monkeypatch.setattr(fast_passwords._slots, "workers", 0)  # no thread, no queue: full
    monkeypatch.setattr(fast_passwords._slots, "queue", 0)
    with pytest.raises(HasherBusy):
        await login(users, fast_passwords, "alice", PASSWORD)


async def test_rehash_after_successful_login_only(users: UserRepository) -> None:
    """ST-03: an owasp-minimum hash becomes m=65536,t=3,p=4 after a successful login, and is
    left alone by a failed one."""
    old = Passwords(profile="owasp-minimum", workers=1)
    current = Passwords(profile="rfc9106-low-memory", workers=1)
    try:
        added = await add(users, old, "alice", PASSWORD)
        assert added.password_hash is not None
        assert added.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        with pytest.raises(AuthenticationFailed):
            await login(users, current, "alice", PASSWORD + "?")
        unchanged = await users.get(added.id)
        assert unchanged is not None and unchanged.password_hash == added.password_hash

        user = await login(users, current, "alice", PASSWORD)
        stored = (await users.get(added.id)).password_hash  # type: ignore[union-attr]
        assert stored is not None
        assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert extract_parameters(stored) == PROFILES["rfc9106-low-memory"]
        assert user.password_hash == stored
        assert not current.needs_rehash(stored)
        assert await login(users, current, "alice", PASSWORD)  # the new hash verifies
        assert (await users.get(added.id)).password_hash == stored  # type: ignore[union-attr]
    finally:
        old.close()
        current.close()


@pytest.mark.slow
async def test_existing_and_unknown_users_take_the_same_time(tmp_path: Path) -> None:
    """LF-02: a wrong password for an existing user and any password for an unknown user are
    indistinguishable in time (Mann-Whitney U, p > 0.01), on the owasp-minimum profile."""
    db = Database.from_url(f"sqlite:///{tmp_path}/timing.sqlite3")
    await db.migrate()
    users = UserRepository(db)
    passwords = Passwords(profile="owasp-minimum", workers=1)
    from scipy.stats import mannwhitneyu  # type: ignore[import-untyped]

    # At p > 0.01 an honest implementation still fails 1% of runs by chance; a second,
    # independent sample is drawn only then, so a false failure needs both (0.01%), while a
    # real leak (no dummy verify) gives p near 0 every time.
    outcomes = []
    try:
        await add(users, passwords, "alice", PASSWORD)
        for _ in range(2):
            samples = await _sample(users, passwords, rounds=250)
            existing, unknown = samples["alice"], samples["ghost"]
            pvalue = mannwhitneyu(existing, unknown, alternative="two-sided").pvalue
            delta_ms = (statistics.median(existing) - statistics.median(unknown)) / 1e6
            outcomes.append(f"p={pvalue:.4g}, median difference {delta_ms:.3f} ms")
            if pvalue > 0.01:
                break
    finally:
        passwords.close()
        await db.close()
    assert pvalue > 0.01, "; ".join(outcomes)


async def _sample(
    users: UserRepository, passwords: Passwords, *, rounds: int
) -> dict[str, list[int]]:
    samples: dict[str, list[int]] = {"alice": [], "ghost": []}
    order = ["alice", "ghost"] * rounds
    random.Random(2024).shuffle(order)
    for username in ["alice", "ghost"] * 10:  # warm up the pool, caches and threads
        await _timed_failure(users, passwords, username)
    for username in order:
        samples[username].append(await _timed_failure(users, passwords, username))
    return samples


async def _timed_failure(users: UserRepository, passwords: Passwords, username: str) -> int:
    started = time.perf_counter_ns()
    try:
        await login(users, passwords, username, "wrong horse battery staple")
    except AuthenticationFailed:
        return time.perf_counter_ns() - started
    raise AssertionError("login should have failed")
