"""Device tokens: signed, bound to one account, expiring, hostile input harmless."""

from __future__ import annotations

import base64

import pytest

from sekisho.ratelimit import DeviceTokens

NOW = 1_700_000_000.0
DAY = 86400
TOKENS = DeviceTokens(b"d" * 32)


def test_issue_and_verify() -> None:
    token = TOKENS.issue("alice", now=NOW)
    assert token.isascii() and "=" not in token and len(token) < 100
    device = TOKENS.verify(token, account="Alice", now=NOW + DAY, max_age=90 * DAY)
    assert device is not None and len(device) == 32
    assert TOKENS.verify(token, account="alice", now=NOW, max_age=DAY) == device
    assert TOKENS.issue("alice", now=NOW) != token  # a fresh device id each time


def test_token_names_no_one() -> None:
    token = TOKENS.issue("alice", now=NOW)
    raw = base64.urlsafe_b64decode(token + "==")
    assert b"alice" not in raw


def test_other_account_refused() -> None:
    token = TOKENS.issue("bob", now=NOW)
    assert TOKENS.verify(token, account="alice", now=NOW, max_age=DAY) is None


def test_other_secret_refused() -> None:
    token = DeviceTokens(b"e" * 32).issue("alice", now=NOW)
    assert TOKENS.verify(token, account="alice", now=NOW, max_age=DAY) is None


def test_expired_and_future_refused() -> None:
    token = TOKENS.issue("alice", now=NOW)
    assert TOKENS.verify(token, account="alice", now=NOW + DAY + 1, max_age=DAY) is None
    assert TOKENS.verify(token, account="alice", now=NOW - 3600, max_age=DAY) is None


def test_tampered_refused() -> None:
    token = TOKENS.issue("alice", now=NOW)
    for i in (0, 5, 30, len(token) - 2):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        assert TOKENS.verify(flipped, account="alice", now=NOW, max_age=DAY) is None


@pytest.mark.parametrize(
    "token", [None, "", "x", "=" * 76, "é" * 76, "A" * 76, "A" * 10_000, "%%%%" * 19])
def test_garbage_refused(token: str | None) -> None:
    assert TOKENS.verify(token, account="alice", now=NOW, max_age=DAY) is None


def test_genuine_without_the_account() -> None:
    """The admission gate's check: issued here and unexpired, whatever the account."""
    token = TOKENS.issue("bob", now=NOW)
    assert TOKENS.genuine(token, now=NOW + DAY, max_age=90 * DAY)
    assert TOKENS.verify(token, account="alice", now=NOW, max_age=DAY) is None  # still bound
    assert not TOKENS.genuine(token, now=NOW + DAY + 1, max_age=DAY)
    assert not DeviceTokens(b"e" * 32).genuine(token, now=NOW, max_age=DAY)
    for i in (0, 5, 30, 50, len(token) - 2):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        assert not TOKENS.genuine(flipped, now=NOW, max_age=DAY)


def test_binding_cannot_be_moved_to_another_token() -> None:
    """The account binding of one token spliced into another breaks the token's tag."""
    alice = base64.urlsafe_b64decode(TOKENS.issue("alice", now=NOW) + "==")
    bob = base64.urlsafe_b64decode(TOKENS.issue("bob", now=NOW) + "==")
    spliced = bob[:25] + alice[25:41] + bob[41:]
    text = base64.urlsafe_b64encode(spliced).rstrip(b"=").decode()
    assert not TOKENS.genuine(text, now=NOW, max_age=DAY)
    assert TOKENS.verify(text, account="alice", now=NOW, max_age=DAY) is None
