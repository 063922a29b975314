"""Argon2id password hashing on a bounded executor (ST-01..ST-03, ST-05, ST-06, LF-02).

One ``argon2.PasswordHasher`` from a named profile does the work in a thread pool of ``workers``
threads (argon2-cffi releases the GIL). At most ``workers`` hashes run at once (at 64 MiB per
hash, that is the memory bound) and at most ``queue`` more wait in each of two lanes, a
priority lane for known devices that attack traffic cannot fill (``hash_slots``); beyond that
a call fails at once with :class:`HasherBusy` instead of queueing without bound.

Passwords are NFC-normalised (PW-04) and otherwise used exactly as given: never trimmed, never
case-folded, never truncated (PW-02). A password over ``max_length`` code points is refused
before any hashing (ST-05):

- ``hash()`` raises ``PasswordRejected("too_long")``;
- ``verify()`` returns False *without* running Argon2. This is faster than a real failure, but
  the shortcut depends only on the password, never on the account: no password that long can
  have been set, so it is wrong for every user alike and reveals nothing about whether the
  account exists (LF-02). The HTTP layer caps the body size before this point.

``verify(None, ...)`` (unknown user, or no password set) verifies against a dummy hash of the
same profile, made once at start-up, so it costs what a real wrong password costs (LF-02).
"""

from __future__ import annotations

import math
import os
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from typing import TypeVar

from argon2 import Parameters, PasswordHasher, Type, extract_parameters, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sekisho.auth.hash_slots import HashSlots
from sekisho.config.models import PasswordSettings
from sekisho.errors import PasswordRejected

T = TypeVar("T")

DEFAULT_PROFILE = "rfc9106-low-memory"
PROFILES: dict[str, Parameters] = {
    # RFC 9106 "second recommended": m=64 MiB, t=3, p=4, 16-byte salt, 32-byte tag (ST-01).
    "rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
    # The OWASP Password Storage Cheat Sheet floor: m=19 MiB, t=2, p=1.
    "owasp-minimum": Parameters(
        type=Type.ID,
        version=19,
        salt_len=16,
        hash_len=32,
        time_cost=2,
        memory_cost=19456,
        parallelism=1,
    ),
}
# OWASP's equivalent Argon2id rows, (memory KiB, iterations), all with p=1 (ST-01).
OWASP_FLOOR: tuple[tuple[int, int], ...] = (
    (47104, 1),
    (19456, 2),
    (12288, 3),
    (9216, 4),
    (7168, 5),
)


def meets_owasp_floor(params: Parameters) -> bool:
    """Whether Argon2 parameters are Argon2id at or above a row of the OWASP table."""
    if params.type is not Type.ID or params.salt_len < 16:
        return False
    return any(
        params.memory_cost >= memory and params.time_cost >= iterations
        for memory, iterations in OWASP_FLOOR
    )


def normalize(password: str) -> str:
    """PW-04: NFC, and nothing else."""
    return unicodedata.normalize("NFC", password)


class Passwords:
    """Hashes and verifies passwords with one Argon2id profile on a bounded thread pool.

    ``profile`` names an entry of :data:`PROFILES`; tests may pass ``argon2.Parameters``
    directly for speed (settings only accept the names).
    """

    def __init__(
        self,
        *,
        profile: str | Parameters = DEFAULT_PROFILE,
        workers: int = 0,
        queue: int = 16,
        reserved: int = 1,
        max_length: int = 256,
    ) -> None:
        if isinstance(profile, str) and profile not in PROFILES:
            raise ValueError(f"unknown Argon2 profile; choose one of {', '.join(PROFILES)}")
        params = PROFILES[profile] if isinstance(profile, str) else profile
        self.profile = profile if isinstance(profile, str) else "custom"
        self.hasher = PasswordHasher.from_parameters(params)
        self.max_length = max_length
        self.workers = workers or os.cpu_count() or 1
        self.queue = queue
        self._slots = HashSlots(workers=self.workers, queue=queue, reserved=reserved,
                                retry_after=self._retry_after)
        self._lock = threading.Lock()
        self._computed = 0
        started = time.perf_counter()
        self._dummy = self.hasher.hash(secrets.token_bytes(32))
        self._seconds = time.perf_counter() - started

    @classmethod
    def from_settings(cls, settings: PasswordSettings) -> Passwords:
        return cls(
            profile=settings.argon2_profile,
            workers=settings.hash_workers,
            queue=settings.hash_queue,
            reserved=settings.hash_reserved,
            max_length=settings.max_length,
        )

    @property
    def parameters(self) -> Parameters:
        return extract_parameters(self._dummy)

    @property
    def pending(self) -> int:
        """Hashes running or waiting now."""
        return self._slots.pending

    @property
    def hashes_computed(self) -> int:
        """Argon2 runs finished since start (hash and verify, dummy ones too): the figure
        that shows a refused attempt cost no hash (bench/stuffing.py reads it)."""
        with self._lock:
            return self._computed

    def too_long(self, password: str) -> bool:
        """Whether a password is refused before hashing (ST-05): over the cap or unencodable."""
        return self._encode(password) is None

    async def hash(self, password: str, *, priority: bool = True) -> str:
        """The encoded Argon2id hash (algorithm, parameters and salt included, ST-02).
        Setting a password is a signed-in user's or an operator's act: priority by default."""
        secret = self._encode(password)
        if secret is None:
            raise PasswordRejected(
                "too_long", f"A password can be at most {self.max_length} characters long."
            )
        return await self._run(self.hasher.hash, secret, priority=priority)

    async def verify(
        self, stored_hash: str | None, password: str, *, priority: bool = False
    ) -> bool:
        """Whether ``password`` matches. ``None`` runs the dummy verify and returns False.
        ``priority``: the attempt comes from a device known for this account."""
        secret = self._encode(password)
        if secret is None:
            return False
        target = self._dummy if stored_hash is None else stored_hash
        matched = await self._run(self._verify_sync, target, secret, priority=priority)
        return matched and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """ST-03: whether a hash was made with other parameters than the current profile."""
        try:
            return self.hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True

    def close(self) -> None:
        self._slots.close()

    def _encode(self, password: str) -> bytes | None:
        # Bound the normalisation work first; NFC grows a string at most 3-fold.
        if len(password) > 4 * self.max_length:
            return None
        nfc = normalize(password)
        if len(nfc) > self.max_length:
            return None
        try:
            # At most 4 bytes per code point: Argon2 never sees more than 4 x max_length bytes.
            return nfc.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: no password can contain them
            return None

    def _verify_sync(self, stored_hash: str, secret: bytes) -> bool:
        try:
            return self.hasher.verify(stored_hash, secret)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError):
            # A corrupt stored value: still pay for one verify, so it looks like a mismatch.
            self._verify_sync(self._dummy, secret)
            return False

    async def _run(self, fn: Callable[..., T], *args: object, priority: bool) -> T:
        return await self._slots.run(self._timed, fn, *args, priority=priority)

    def _timed(self, fn: Callable[..., T], *args: object) -> T:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._seconds = 0.8 * self._seconds + 0.2 * elapsed
                self._computed += 1

    def _retry_after(self, pending: int) -> int:
        """Seconds until ``pending`` hashes have likely drained; at least 1."""
        with self._lock:
            seconds = self._seconds
        return max(1, math.ceil(seconds * (pending / self.workers + 1)))
