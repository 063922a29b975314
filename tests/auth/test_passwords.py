"""Argon2id hashing: profiles, salts, length caps and the bounded executor."""

from __future__ import annotations

import asyncio
import base64
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from argon2 import Parameters, PasswordHasher, Type, extract_parameters

from sekisho.auth.passwords import (
    OWASP_FLOOR,
    PROFILES,
    Passwords,
    meets_owasp_floor,
)
from sekisho.config.models import PasswordSettings
from sekisho.errors import HasherBusy, PasswordRejected

PASSWORD = "correct horse battery staple"
# Test-only parameters where the cost does not matter (as in conftest's fast_passwords).
FAST_ARGON2 = Parameters(Type.ID, 19, 16, 32, 1, 1024, 1)
_ENCODED = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([^$]+)\$([^$]+)$")


class SpyHasher:
    """Wraps a PasswordHasher: counts calls, tracks how many run at once, can hold them."""

    def __init__(self, inner: PasswordHasher, *, gate: threading.Event | None = None) -> None:
        self.inner = inner
        self.gate = gate
        self.lock = threading.Lock()
        self.calls = 0
        self.active = 0
        self.peak = 0

    def _enter(self) -> None:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.peak = max(self.peak, self.active)

    def _leave(self) -> None:
        with self.lock:
            self.active -= 1

    def hash(self, secret: bytes) -> str:
        self._enter()
        try:
            return self.inner.hash(secret)
        finally:
            self._leave()

    def verify(self, stored: str, secret: bytes) -> bool:
        self._enter()
        try:
            if self.gate is not None:
                assert self.gate.wait(timeout=60)
            return self.inner.verify(stored, secret)
        finally:
            self._leave()

    def check_needs_rehash(self, stored: str) -> bool:
        return self.inner.check_needs_rehash(stored)


def spy_on(passwords: Passwords, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> SpyHasher:
    spy = SpyHasher(passwords.hasher, **kw)
    monkeypatch.setattr(passwords, "hasher", spy)
    return spy


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.001)


def parse(encoded: str) -> tuple[int, int, int, bytes]:
    """(m, t, p, salt) from an encoded Argon2id hash, parsed by hand."""
    match = _ENCODED.match(encoded)
    assert match, "not an encoded Argon2id v19 hash"
    m, t, p, salt = match.groups()[:4]
    return int(m), int(t), int(p), base64.b64decode(salt + "=" * (-len(salt) % 4))


def at_owasp_floor(m: int, t: int) -> bool:
    """ST-01's test, literally: m >= 19456 and (m, t) at or above a row of the OWASP table."""
    return m >= 19456 and any(m >= row_m and t >= row_t for row_m, row_t in OWASP_FLOOR)


@pytest.fixture(scope="module")
def default_hash() -> str:
    passwords = Passwords()
    try:
        return asyncio.run(passwords.hash(PASSWORD))
    finally:
        passwords.close()


def test_default_profile_is_rfc9106_low_memory(default_hash: str) -> None:
    """ST-01: the default stored string starts $argon2id$v=19$m=65536,t=3,p=4$."""
    assert default_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert extract_parameters(default_hash) == PROFILES["rfc9106-low-memory"]
    m, t, p, _ = parse(default_hash)
    assert at_owasp_floor(m, t) and p >= 1


@pytest.mark.parametrize("name", sorted(PROFILES))
async def test_every_profile_meets_the_owasp_floor(name: str) -> None:
    """ST-01: each named profile hashes at or above the OWASP Argon2id floor."""
    passwords = Passwords(profile=name, workers=1)
    try:
        m, t, _, salt = parse(await passwords.hash(PASSWORD))
    finally:
        passwords.close()
    assert at_owasp_floor(m, t), f"profile {name} is below the OWASP floor: m={m} t={t}"
    assert meets_owasp_floor(PROFILES[name])
    assert len(salt) == 16


@pytest.mark.parametrize(
    ("m", "t", "ok"),
    [
        (19456, 2, True),
        (19455, 2, False),
        (19456, 1, False),
        (12288, 2, False),
        (12288, 3, True),
        (47104, 1, True),
        (46000, 1, False),
        (9216, 4, True),
        (7168, 5, True),
        (7168, 4, False),
        (65536, 3, True),
    ],
)
def test_owasp_floor_check_fails_below_the_table(m: int, t: int, ok: bool) -> None:
    """ST-01: the floor check refuses (m, t) pairs below every row of the OWASP table."""
    assert meets_owasp_floor(Parameters(Type.ID, 19, 16, 32, t, m, 1)) is ok


@pytest.mark.parametrize(("m", "t"), [(19455, 9), (12288, 3), (19456, 1), (1024, 1)])
def test_profile_check_fails_below_the_floor(m: int, t: int) -> None:
    """ST-01: the check the profiles pass fails for m < 19456 or (m, t) below the table."""
    assert not at_owasp_floor(m, t)


def test_owasp_floor_wants_argon2id() -> None:
    """ST-01: Argon2i or Argon2d at any cost is not Argon2id."""
    params = PROFILES["rfc9106-low-memory"]
    assert not meets_owasp_floor(Parameters(Type.I, 19, 16, 32, 3, params.memory_cost, 4))


async def test_unique_salts_and_recoverable_parameters() -> None:
    """ST-02: same password, different hashes; 16-byte salt; parameters in the string."""
    passwords = Passwords(profile="owasp-minimum", workers=1)
    try:
        first, second = await passwords.hash(PASSWORD), await passwords.hash(PASSWORD)
    finally:
        passwords.close()
    assert first != second
    assert parse(first)[3] != parse(second)[3]
    assert len(parse(first)[3]) == 16
    assert extract_parameters(first) == PROFILES["owasp-minimum"]


async def test_verify(fast_passwords: Passwords) -> None:
    stored = await fast_passwords.hash(PASSWORD)
    assert await fast_passwords.verify(stored, PASSWORD)
    assert not await fast_passwords.verify(stored, PASSWORD + "x")
    assert not await fast_passwords.verify(stored, "")


async def test_nfc_at_set_and_verify(fast_passwords: Passwords) -> None:
    """PW-04: NFC both ways; no trimming, no case folding."""
    stored = await fast_passwords.hash("caf\u00e9 au lait, s'il vous pla\u00eet")
    assert await fast_passwords.verify(stored, "cafe\u0301 au lait, s'il vous plai\u0302t")
    assert not await fast_passwords.verify(stored, "caf\u00e9 au lait, s'il vous pla\u00eet ")
    assert not await fast_passwords.verify(stored, "Caf\u00e9 au lait, s'il vous pla\u00eet")


async def test_no_password_runs_the_dummy_verify(
    fast_passwords: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LF-02: no stored hash still costs one verify of the same profile, and fails."""
    spy = spy_on(fast_passwords, monkeypatch)
    assert not await fast_passwords.verify(None, PASSWORD)
    assert spy.calls == 1
    assert fast_passwords.parameters == FAST_ARGON2


async def test_corrupt_stored_hash_fails_at_full_cost(
    fast_passwords: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on(fast_passwords, monkeypatch)
    assert not await fast_passwords.verify("not-a-hash", PASSWORD)
    assert not await fast_passwords.verify("$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", PASSWORD)
    assert spy.calls >= 2


async def test_needs_rehash() -> None:
    """ST-03: hashes of another profile (or unreadable ones) need a rehash."""
    current = Passwords(profile="owasp-minimum", workers=1)
    other = Passwords(profile=FAST_ARGON2, workers=1)
    try:
        assert not current.needs_rehash(await current.hash(PASSWORD))
        assert current.needs_rehash(await other.hash(PASSWORD))
        assert current.needs_rehash("garbage")
    finally:
        current.close()
        other.close()


async def test_megabyte_password_never_reaches_argon2(
    fast_passwords: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ST-05: a 1 MB password is refused before hashing, at set and at verify time."""
    stored = await fast_passwords.hash(PASSWORD)
    spy = spy_on(fast_passwords, monkeypatch)
    huge = "a" * 1_000_000
    assert fast_passwords.too_long(huge)
    assert not await fast_passwords.verify(stored, huge)
    assert not await fast_passwords.verify(None, huge)
    with pytest.raises(PasswordRejected) as caught:
        await fast_passwords.hash(huge)
    assert caught.value.reason == "too_long"
    assert huge[:64] not in str(caught.value)
    assert spy.calls == 0


async def test_length_cap_in_code_points(
    fast_passwords: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PW-02/ST-05: 256 code points hash (also 256 after NFC); 257 are refused unhashed."""
    spy = spy_on(fast_passwords, monkeypatch)
    stored = await fast_passwords.hash("🔑" * 256)
    assert await fast_passwords.verify(stored, "🔑" * 256)
    assert await fast_passwords.hash("e\u0301" * 256)  # 512 code points in, 256 after NFC
    assert spy.calls == 3
    assert not await fast_passwords.verify(stored, "🔑" * 257)
    with pytest.raises(PasswordRejected):
        await fast_passwords.hash("a" * 257)
    assert spy.calls == 3


async def test_unencodable_password_is_refused(
    fast_passwords: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on(fast_passwords, monkeypatch)
    lone_surrogate = "abc\ud800defghijklmnopq"
    assert not await fast_passwords.verify(None, lone_surrogate)
    with pytest.raises(PasswordRejected):
        await fast_passwords.hash(lone_surrogate)
    assert spy.calls == 0


def test_unknown_profile() -> None:
    with pytest.raises(ValueError, match="rfc9106-low-memory"):
        Passwords(profile="md5")


def test_from_settings() -> None:
    settings = PasswordSettings(
        argon2_profile="owasp-minimum", hash_workers=3, hash_queue=5, max_length=100
    )
    passwords = Passwords.from_settings(settings)
    try:
        assert passwords.parameters == PROFILES["owasp-minimum"]
        assert (passwords.workers, passwords.queue, passwords.max_length) == (3, 5, 100)
    finally:
        passwords.close()


async def test_burst_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """ST-06: 200 concurrent verifies with workers=2, queue=4 (and no reserved worker): 6
    admitted, the rest get HasherBusy at once with retry_after > 0; none hang; never more
    than 2 run at once."""
    passwords = Passwords(profile=FAST_ARGON2, workers=2, queue=4, reserved=0)
    stored = await passwords.hash(PASSWORD)
    gate = threading.Event()
    spy = spy_on(passwords, monkeypatch, gate=gate)
    tasks = [asyncio.create_task(passwords.verify(stored, PASSWORD)) for _ in range(200)]
    await asyncio.sleep(0)  # every task has now been admitted or refused
    refused = [t for t in tasks if t.done() and isinstance(t.exception(), HasherBusy)]
    assert len(refused) == 200 - 6
    await asyncio.wait_for(_until(lambda: spy.active == 2), 30)
    await asyncio.sleep(0.05)  # room for a third to start, were the bound broken
    assert spy.active == 2
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
    busy = [r for r in results if isinstance(r, HasherBusy)]
    assert len(busy) == 194
    assert all(b.retry_after > 0 for b in busy)
    assert results.count(True) == 6
    assert spy.peak == 2
    assert passwords.pending == 0
    assert await passwords.verify(stored, PASSWORD)  # capacity is back
    passwords.close()


async def test_burst_without_a_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """ST-06: the same burst on real (fast) hashing: refusals, no hang, at most 2 at once."""
    passwords = Passwords(profile=FAST_ARGON2, workers=2, queue=4)
    stored = await passwords.hash(PASSWORD)
    spy = spy_on(passwords, monkeypatch)
    results = await asyncio.wait_for(
        asyncio.gather(
            *(passwords.verify(stored, PASSWORD) for _ in range(200)), return_exceptions=True
        ),
        60,
    )
    assert all(r is True or isinstance(r, HasherBusy) for r in results)
    assert any(isinstance(r, HasherBusy) for r in results)
    assert 1 <= spy.peak <= 2
    assert passwords.pending == 0
    passwords.close()


async def test_known_devices_jump_a_queue_full_of_attack_traffic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RL-07 (issue 3: the real user keeps a way in): with the normal lane full, a priority
    verify is still admitted, and it runs before every normal one that waited longer."""
    passwords = Passwords(profile=FAST_ARGON2, workers=1, queue=2)
    stored = await passwords.hash(PASSWORD)
    gate = threading.Event()
    spy_on(passwords, monkeypatch, gate=gate)
    finished: list[str] = []

    def start(name: str, *, priority: bool) -> asyncio.Task[bool]:
        task = asyncio.create_task(passwords.verify(stored, PASSWORD, priority=priority))
        task.add_done_callback(lambda _t: finished.append(name))
        return task

    running = start("running", priority=False)
    await asyncio.sleep(0)
    queued = [start(f"attack{i}", priority=False) for i in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(HasherBusy):  # the normal lane is full ...
        await passwords.verify(stored, PASSWORD)
    known = start("known", priority=True)  # ... the priority lane is not
    await asyncio.sleep(0)
    assert passwords.pending == 4
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(running, *queued, known), 60)
    assert all(results)
    assert finished == ["running", "known", "attack0", "attack1"]
    assert passwords.pending == 0
    passwords.close()


async def test_attack_traffic_never_holds_the_last_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RL-07: with two workers, normal hashes run one at a time; the other thread is kept
    for a known device, whose hash starts at once while attack hashes run and wait."""
    passwords = Passwords(profile=FAST_ARGON2, workers=2, queue=4)
    stored = await passwords.hash(PASSWORD)
    gate = threading.Event()
    spy = spy_on(passwords, monkeypatch, gate=gate)
    attack = [asyncio.create_task(passwords.verify(stored, PASSWORD)) for _ in range(3)]
    await _until(lambda: spy.active == 1)
    await asyncio.sleep(0.05)
    assert spy.active == 1 and passwords.pending == 3  # one runs, two wait
    known = asyncio.create_task(passwords.verify(stored, PASSWORD, priority=True))
    await _until(lambda: spy.active == 2)  # started beside the attack's, not after it
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(known, *attack), 60) == [True] * 4
    assert spy.peak == 2 and passwords.pending == 0
    passwords.close()


async def test_a_cancelled_waiter_gives_up_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """ST-06: a request cancelled while queued leaves the queue; the slot chain goes on."""
    passwords = Passwords(profile=FAST_ARGON2, workers=1, queue=1)
    stored = await passwords.hash(PASSWORD)
    gate = threading.Event()
    spy_on(passwords, monkeypatch, gate=gate)
    running = asyncio.create_task(passwords.verify(stored, PASSWORD))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(passwords.verify(stored, PASSWORD))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    later = asyncio.create_task(passwords.verify(stored, PASSWORD))  # its place is free
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(running, later), 60) == [True, True]
    assert passwords.pending == 0
    passwords.close()


async def test_cancelled_caller_keeps_its_slot_until_the_hash_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ST-06: cancelling a request does not free a slot while its Argon2 work still runs."""
    passwords = Passwords(profile=FAST_ARGON2, workers=1, queue=0)
    stored = await passwords.hash(PASSWORD)
    gate = threading.Event()
    spy = spy_on(passwords, monkeypatch, gate=gate)
    task = asyncio.create_task(passwords.verify(stored, PASSWORD))
    await asyncio.wait_for(_until(lambda: spy.active == 1), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(HasherBusy):
        await passwords.verify(stored, PASSWORD)
    gate.set()
    await asyncio.wait_for(_until(lambda: passwords.pending == 0), 30)
    assert await passwords.verify(stored, PASSWORD)
    assert spy.peak == 1
    passwords.close()
