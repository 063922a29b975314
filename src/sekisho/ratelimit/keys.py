"""Keys for counters and budgets: nothing a person typed reaches the store (RL-06).

An account is keyed by HMAC-SHA-256 over its canonical username, so ``Alice`` and ``ALICE``
share one counter, an unknown name is counted exactly like a real one (the regulator never
learns which is which), and a dump of Redis names no one. A name that cannot be
canonicalised (too long, control characters: perhaps a password typed into the wrong field)
is keyed too, under its own domain tag, so it is counted rather than refused here.

Addresses are the *trusted* client IP the gateway resolved (RL-10). IPv4-mapped IPv6 is
treated as the IPv4 address it carries. The subnet is the /24 (IPv4) or /64 (IPv6). A client
"address" that is not an IP (``unknown`` for a Unix-socket peer) is one bucket of its own.

The HMAC key is derived from the session key material with a purpose label, so these keys
say nothing about the session, CSRF or device-token keys made from the same secret.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress

from sekisho.auth.usernames import canonical_username
from sekisho.errors import InvalidUsername, RateLimitError

__all__ = ["RateLimitKeys", "derive_key", "normalise_ip"]

MIN_SECRET = 16
_RAW_LIMIT = 1024  # bound the HMAC input for a name that failed canonicalisation
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A sub-key of ``secret`` for one purpose (HMAC-SHA-256 as a PRF, labelled)."""
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET:
        raise RateLimitError(f"secret must be at least {MIN_SECRET} bytes")
    return hmac.new(secret, b"sekisho/" + purpose.encode(), hashlib.sha256).digest()


def normalise_ip(client_ip: str) -> IPAddress | None:
    """The address in ``client_ip``, IPv4-mapped IPv6 unmapped; ``None`` if it is not one."""
    try:
        ip = ipaddress.ip_address(client_ip.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class RateLimitKeys:
    """Derives every key the limiter and the regulator store."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        self._key = derive_key(secret, "ratelimit-keys")

    def account(self, username: str) -> str:
        """32 hex characters: HMAC-SHA-256 of the canonical username, truncated (128 bits)."""
        try:
            tagged = b"u\x00" + canonical_username(username).encode()
        except InvalidUsername:
            raw = username[:_RAW_LIMIT] if isinstance(username, str) else repr(username)
            tagged = b"x\x00" + raw.encode("utf-8", "surrogatepass")
        return self._mac(tagged)

    def ip(self, client_ip: str) -> str:
        return _address_keys(client_ip)[0] or self._opaque(client_ip)

    def subnet(self, client_ip: str) -> str:
        return _address_keys(client_ip)[1] or self._opaque(client_ip)

    def account_ip(self, account_key: str, client_ip: str) -> str:
        """Of an account *key* (from :meth:`account`) and an address."""
        return f"{account_key}|{self.ip(client_ip)}"

    def _opaque(self, text: str) -> str:
        return "h:" + self._mac(b"a\x00" + text[:_RAW_LIMIT].encode("utf-8", "surrogatepass"))

    def _mac(self, data: bytes) -> str:
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()[:32]


@functools.lru_cache(maxsize=8192)
def _address_keys(client_ip: str) -> tuple[str, str]:
    """The address and its /24 (IPv4) or /64 (IPv6) as text; ("", "") if not an address.
    Cached: a flood comes from a bounded set of addresses, each asked about again and again."""
    ip = normalise_ip(client_ip)
    if ip is None:
        return "", ""
    prefix = 24 if ip.version == 4 else 64
    return str(ip), str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
