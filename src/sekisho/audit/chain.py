"""The audit hash chain: each stored event names the hash of the one before it.

``hash = SHA-256(prev_hash || body)``, where ``prev_hash`` is the previous record's hash as 64
lowercase hex characters (:data:`GENESIS`, 64 zeros, for the first record) and ``body`` is the
event's canonical JSON (:func:`canonical_json`: sorted keys, no spaces, ASCII only), both
UTF-8 encoded. Records are numbered 1, 2, 3 ... with no gaps.

Changing, inserting or deleting a record in the middle breaks a link that :func:`verify`
reports, naming the first record where the chain stops holding. Cutting records off the *end*
leaves a shorter chain that still verifies: compare the head (``VerifyResult.head``) with a
copy kept elsewhere — every JSON log line carries its record's ``seq`` and ``hash`` (AU-04).

Pure: no I/O. ``store.audit_log`` keeps the records; it is handed :func:`link_hash` and
:class:`Verifier` because the store sits below this package.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GENESIS", "Link", "Verifier", "VerifyResult", "canonical_json", "link_hash", "seal",
    "verify",
]

GENESIS = "0" * 64


def canonical_json(data: Mapping[str, Any]) -> str:
    """One text for one value: sorted keys, no whitespace, non-ASCII and controls escaped."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def link_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Link:
    """One record as the chain sees it."""

    seq: int
    body: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """``ok``: every record checked holds. Otherwise ``broken_at`` is the first record that
    does not (its ``seq``) and ``problem`` says why. ``head`` is the last good hash."""

    ok: bool
    checked: int
    head: str
    broken_at: int | None = None
    problem: str | None = None


class Verifier:
    """Checks records fed in order; stops at the first broken link."""

    __slots__ = ("_broken", "_checked", "_head", "_next")

    def __init__(self, *, prev_hash: str = GENESIS, first_seq: int = 1) -> None:
        self._head = prev_hash
        self._next = first_seq
        self._checked = 0
        self._broken: tuple[int, str] | None = None

    @property
    def broken(self) -> bool:
        return self._broken is not None

    def feed(self, seq: int, *, prev_hash: str, hash: str, body: str) -> bool:
        """Check one record; False once the chain is broken (feed no more)."""
        if self._broken is not None:
            return False
        if seq != self._next:
            return self.fail(seq, f"record {self._next} expected here, found {seq}")
        if prev_hash != self._head:
            return self.fail(seq, "prev_hash does not match the previous record's hash")
        if link_hash(prev_hash, body) != hash:
            return self.fail(seq, "hash does not match the record's contents")
        self._head, self._next, self._checked = hash, seq + 1, self._checked + 1
        return True

    def fail(self, seq: int, problem: str) -> bool:
        """Mark the chain broken at ``seq`` (a check the caller made, e.g. its columns)."""
        if self._broken is None:
            self._broken = (seq, problem)
        return False

    def result(self) -> VerifyResult:
        if self._broken is None:
            return VerifyResult(ok=True, checked=self._checked, head=self._head)
        seq, problem = self._broken
        return VerifyResult(ok=False, checked=self._checked, head=self._head, broken_at=seq,
                            problem=problem)


def verify(
    links: Iterable[Link], *, prev_hash: str = GENESIS, first_seq: int = 1
) -> VerifyResult:
    """Walk the chain in order and report the first broken link."""
    verifier = Verifier(prev_hash=prev_hash, first_seq=first_seq)
    for link in links:
        if not verifier.feed(link.seq, prev_hash=link.prev_hash, hash=link.hash,
                             body=link.body):
            break
    return verifier.result()


def seal(seq: int, body: str, prev_hash: str) -> Link:
    """The record that follows ``prev_hash`` with this body."""
    return Link(seq=seq, body=body, prev_hash=prev_hash, hash=link_hash(prev_hash, body))
