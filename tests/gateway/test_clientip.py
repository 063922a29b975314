"""Client IP resolution (PX-03, RL-10)."""

from __future__ import annotations

import random

import pytest

from sekisho.gateway.clientip import UNKNOWN, ClientIP, parse_ip

TRUSTED = ["10.0.0.0/8", "2001:db8:ffff::/48"]


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", v.encode()) for v in values]


@pytest.mark.parametrize(
    ("trusted", "peer", "headers", "expected"),
    [
        # The two cases REQUIREMENTS.md names.
        ([], "203.0.113.9", xff("1.2.3.4"), "203.0.113.9"),
        (TRUSTED, "10.0.0.2", xff("1.2.3.4, 198.51.100.7"), "198.51.100.7"),
        # Untrusted peer: its header is ignored, whatever it says.
        (TRUSTED, "203.0.113.9", xff("10.0.0.1"), "203.0.113.9"),
        # Several trusted hops are skipped; the left-most value is never taken on trust.
        (TRUSTED, "10.0.0.2", xff("1.2.3.4, 198.51.100.7, 10.9.9.9"), "198.51.100.7"),
        # Header copies count in order, as if comma-joined.
        (TRUSTED, "10.0.0.2", xff("1.2.3.4", "198.51.100.7, 10.0.0.3"), "198.51.100.7"),
        (TRUSTED, "10.0.0.2", [], "10.0.0.2"),
        # Every hop trusted: the request came from inside.
        (TRUSTED, "10.0.0.2", xff("10.0.0.7, 10.0.0.3"), "10.0.0.7"),
        # A malformed hop stops the walk at the last address that parsed (a trusted one).
        (TRUSTED, "10.0.0.2", xff("1.2.3.4, garbage, 10.0.0.3"), "10.0.0.3"),
        (TRUSTED, "10.0.0.2", xff("198.51.100.7, unknown"), "10.0.0.2"),
        (TRUSTED, "10.0.0.2", xff("1.2.3.4,,10.0.0.3"), "10.0.0.3"),
        (TRUSTED, "10.0.0.2", xff("1.2.3.4, 198.51.100.7:8080"), "198.51.100.7"),
        (TRUSTED, "10.0.0.2", xff("198.51.100.7:port"), "10.0.0.2"),
        # IPv6, bracketed with a port, compressed on output.
        (TRUSTED, "2001:db8:ffff::1", xff("2a00:1450:0:0::1"), "2a00:1450::1"),
        (TRUSTED, "10.0.0.2", xff("[2a00:1450::1]:443"), "2a00:1450::1"),
        (TRUSTED, "10.0.0.2", xff("[2a00:1450::1"), "10.0.0.2"),
        # IPv4-mapped IPv6 is an IPv4 address, peer or hop.
        ([], "::ffff:203.0.113.9", [], "203.0.113.9"),
        (TRUSTED, "::ffff:10.0.0.2", xff("::ffff:198.51.100.7"), "198.51.100.7"),
        (TRUSTED, "::ffff:203.0.113.9", xff("1.2.3.4"), "203.0.113.9"),
        ([], "2001:db8::1", xff("1.2.3.4"), "2001:db8::1"),
    ],
)
def test_resolve_table(
    trusted: list[str], peer: str, headers: list[tuple[bytes, bytes]], expected: str
) -> None:
    """PX-03: the peer unless trusted, then the right-most untrusted X-Forwarded-For hop."""
    assert ClientIP(trusted).resolve(peer, headers) == expected


def test_spoofed_xff_from_untrusted_peer_never_changes_the_key() -> None:
    """RL-10: 100 random spoofed XFF values from one socket peer give one rate-limit key."""
    rng = random.Random(7)
    for trusted in ([], TRUSTED):
        resolver = ClientIP(trusted)
        keys = {
            resolver.resolve("203.0.113.9", xff(f"{rng.randrange(1, 255)}.{rng.randrange(256)}"
                                                f".{rng.randrange(256)}.{rng.randrange(256)}"))
            for _ in range(100)
        }
        assert keys == {"203.0.113.9"}


class _Exploding:
    def __iter__(self) -> None:
        raise AssertionError("headers were read")


def test_no_trusted_proxies_reads_no_header() -> None:
    """PX-03/RL-10: with the default empty trusted set the headers are not even scanned."""
    assert ClientIP([]).resolve("198.51.100.7", _Exploding()) == "198.51.100.7"  # type: ignore[arg-type]


def test_no_peer_is_unknown() -> None:
    assert ClientIP(TRUSTED).resolve(None, xff("1.2.3.4")) == UNKNOWN


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ("for=198.51.100.7, for=10.0.0.3", "198.51.100.7"),
        ("for=unknown, for=10.0.0.3", "10.0.0.3"),
        ("for=_hidden", "10.0.0.2"),
        ("proto=https", "10.0.0.2"),
        ('For="198.51.100.7"', "198.51.100.7"),
    ],
)
def test_forwarded_header_mode(value: str, expected: str) -> None:
    """PX-03: the RFC 7239 ``Forwarded`` header, walked the same way, when configured."""
    resolver = ClientIP(TRUSTED, header="forwarded")
    headers = [(b"forwarded", value.encode()), (b"x-forwarded-for", b"6.6.6.6")]
    assert resolver.resolve("10.0.0.2", headers) == expected


def test_is_trusted() -> None:
    resolver = ClientIP(TRUSTED)
    assert resolver.is_trusted("10.1.2.3")
    assert resolver.is_trusted("::ffff:10.1.2.3")
    assert resolver.is_trusted("2001:db8:ffff:1::9")
    assert not resolver.is_trusted("11.0.0.1")
    assert not resolver.is_trusted(None)
    assert not resolver.is_trusted("not-an-ip")
    assert not ClientIP([]).is_trusted("10.1.2.3")


def test_rejects_unknown_header_name() -> None:
    with pytest.raises(ValueError, match="header"):
        ClientIP([], header="x-real-ip")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4 ", "1.2.3.4"),
        ("1.2.3.4:80", "1.2.3.4"),
        ("[::1]", "::1"),
        ("[::1]:80", "::1"),
        ("::FFFF:1.2.3.4", "1.2.3.4"),
        ("1.2.3", None),
        ("[::1]x", None),
        ("", None),
        ("unknown", None),
    ],
)
def test_parse_ip(text: str, expected: str | None) -> None:
    ip = parse_ip(text)
    assert (None if ip is None else str(ip)) == expected
