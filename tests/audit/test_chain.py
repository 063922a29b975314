"""The audit hash chain, pure: sealing, verification, and where a break is reported."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from sekisho.audit.chain import GENESIS, Link, canonical_json, link_hash, seal, verify


def chain_of(n: int) -> list[Link]:
    links: list[Link] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        link = seal(seq, canonical_json({"event": "authz_admin", "n": seq}), prev)
        links.append(link)
        prev = link.hash
    return links


def test_hash_is_sha256_of_prev_hash_and_canonical_body() -> None:
    """AU-04: hash = SHA-256(prev_hash || canonical JSON), GENESIS before the first record."""
    body = canonical_json({"b": 1, "a": "x"})
    assert body == '{"a":"x","b":1}'
    expected = hashlib.sha256((GENESIS + body).encode()).hexdigest()
    assert link_hash(GENESIS, body) == expected
    assert seal(1, body, GENESIS).hash == expected


def test_canonical_json_escapes_everything_outside_printable_ascii() -> None:
    """AU-04: one text per value; CR, LF, U+2028 and non-ASCII are escaped."""
    body = canonical_json({"user": "bob\n{\"event\":1}\r\u2028名"})
    assert "\n" not in body and "\r" not in body and "\u2028" not in body
    assert body.isascii()


def test_an_intact_chain_verifies() -> None:
    """AU-04: a linear chain verifies, and the head is the last hash."""
    links = chain_of(5)
    result = verify(links)
    assert result.ok and result.checked == 5 and result.head == links[-1].hash
    assert result.broken_at is None
    empty = verify([])
    assert empty.ok and empty.checked == 0 and empty.head == GENESIS


def test_a_changed_body_is_named() -> None:
    """AU-04: tampering with one record's body is reported at that record."""
    links = chain_of(5)
    links[2] = replace(links[2], body=links[2].body.replace('"n":3', '"n":4'))
    result = verify(links)
    assert not result.ok and result.broken_at == 3 and result.checked == 2
    assert "hash" in (result.problem or "")


def test_a_rehashed_forgery_breaks_the_next_link() -> None:
    """AU-04: recomputing the forged record's own hash moves the break to the next one."""
    links = chain_of(5)
    forged = seal(3, canonical_json({"event": "authz_admin", "n": 99}), links[1].hash)
    links[2] = forged
    result = verify(links)
    assert not result.ok and result.broken_at == 4
    assert "prev_hash" in (result.problem or "")


def test_a_deleted_or_reordered_record_is_named() -> None:
    """AU-04: a gap or a swap is found where it happens."""
    links = chain_of(5)
    gap = verify([*links[:2], *links[3:]])
    assert not gap.ok and gap.broken_at == 4
    swapped = verify([links[0], links[2], links[1], *links[3:]])
    assert not swapped.ok and swapped.broken_at == 3


def test_a_truncated_chain_still_verifies_so_the_head_must_be_compared() -> None:
    """Documented limit: cutting off the tail leaves a valid, shorter chain; the head
    differs from the one the log lines carry."""
    links = chain_of(5)
    short = verify(links[:3])
    assert short.ok and short.head != links[-1].hash
