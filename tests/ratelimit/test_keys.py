"""Key derivation: HMAC'd accounts (RL-06), trusted addresses and subnets."""

from __future__ import annotations

import pytest

from sekisho.ratelimit import RateLimitError, RateLimitKeys

KEYS = RateLimitKeys(b"s" * 32)


def test_account_key_is_hmac_of_canonical_name_rl06() -> None:
    """RL-06: one key per canonical account; hex, 32 characters; the name is not in it."""
    key = KEYS.account("alice")
    assert len(key) == 32 and int(key, 16) >= 0
    assert KEYS.account("Alice") == KEYS.account(" ALICE ") == KEYS.account("Ａｌｉｃｅ") == key
    assert KEYS.account("bob") != key
    assert RateLimitKeys(b"t" * 32).account("alice") != key


def test_uncanonicalisable_names_are_keyed_not_refused_rl06() -> None:
    """RL-06: a name that fails canonicalisation is still counted, under its own key."""
    weird = KEYS.account("a\u200bb")
    assert len(weird) == 32
    assert weird != KEYS.account("ab")
    assert KEYS.account("x" * 5000) == KEYS.account("x" * 5000)


@pytest.mark.parametrize(
    ("client_ip", "ip", "subnet"),
    [
        ("192.0.2.77", "192.0.2.77", "192.0.2.0/24"),
        ("::ffff:192.0.2.77", "192.0.2.77", "192.0.2.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:0DB8:0001:0002::9", "2001:db8:1:2::9", "2001:db8:1:2::/64"),
    ],
)
def test_ip_and_subnet(client_ip: str, ip: str, subnet: str) -> None:
    assert KEYS.ip(client_ip) == ip
    assert KEYS.subnet(client_ip) == subnet


def test_non_ip_client_is_one_opaque_bucket() -> None:
    assert KEYS.ip("unknown") == KEYS.subnet("unknown") == KEYS.ip("unknown")
    assert KEYS.ip("unknown").startswith("h:") and "unknown" not in KEYS.ip("unknown")
    assert KEYS.ip("testclient") != KEYS.ip("unknown")


def test_account_ip() -> None:
    acct = KEYS.account("alice")
    assert KEYS.account_ip(acct, "::ffff:10.0.0.1") == f"{acct}|10.0.0.1"


def test_short_secret_refused() -> None:
    with pytest.raises(RateLimitError, match="at least 16 bytes"):
        RateLimitKeys(b"short")
