"""The client IP the rest of the gateway trusts (PX-03, RL-10, security invariant 3).

The TCP peer is the client unless the peer is a configured trusted proxy. Only then is
``X-Forwarded-For`` (or, when configured, ``Forwarded``) read, right to left, skipping trusted
hops; the first untrusted address is the client. The left-most value is never taken on
trust: it is whatever the client wrote.

A hop that does not parse as an IP address stops the walk. Everything left of it was written
by a party we cannot vouch for, so the answer is the last address that did parse, which is
always a trusted proxy (or the peer itself). If every hop is trusted, the left-most trusted
hop is the answer: the request came from inside the trusted set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: What ``resolve`` returns when the server reports no peer (a Unix socket). RFC 7239 §6.
UNKNOWN = "unknown"

_HEADERS = {"x-forwarded-for": b"x-forwarded-for", "forwarded": b"forwarded"}


class ClientIP:
    """``resolve(peer, headers)`` gives the client address as a normalised string."""

    __slots__ = ("_forwarded", "_header", "_v4", "_v6")

    def __init__(self, trusted: Sequence[str], *, header: str = "x-forwarded-for") -> None:
        if header not in _HEADERS:
            raise ValueError("header must be 'x-forwarded-for' or 'forwarded'")
        nets = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted]
        self._v4 = tuple(n for n in nets if isinstance(n, ipaddress.IPv4Network))
        self._v6 = tuple(n for n in nets if isinstance(n, ipaddress.IPv6Network))
        self._header = _HEADERS[header]
        self._forwarded = header == "forwarded"

    @property
    def has_trusted(self) -> bool:
        return bool(self._v4 or self._v6)

    def is_trusted(self, addr: str | None) -> bool:
        """Whether ``addr`` (a peer address) lies in a trusted-proxy CIDR."""
        if addr is None or not self.has_trusted:
            return False
        ip = parse_ip(addr)
        return ip is not None and self._contains(ip)

    def resolve(self, peer: str | None, headers: Iterable[tuple[bytes, bytes]]) -> str:
        if peer is None:
            return UNKNOWN
        if not self.has_trusted:
            # The default and hot path: no header is even looked at (RL-10).
            return _fast_normalise(peer)
        ip = parse_ip(peer)
        if ip is None:
            return peer
        if not self._contains(ip):
            return str(ip)
        last = str(ip)
        for hop in reversed(self._hops(headers)):
            addr = parse_ip(hop)
            if addr is None:
                return last
            if not self._contains(addr):
                return str(addr)
            last = str(addr)
        return last

    def _contains(self, ip: IPAddress) -> bool:
        nets = self._v4 if ip.version == 4 else self._v6
        return any(ip in net for net in nets)

    def _hops(self, headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
        # Every copy of the header counts, in order, as if comma-joined (RFC 9110 §5.3).
        values = [v.decode("latin-1") for k, v in headers if k == self._header]
        if not values:
            return []
        hops = ",".join(values).split(",")
        return [_forwarded_for(h) for h in hops] if self._forwarded else hops


def parse_ip(text: str) -> IPAddress | None:
    """An address from a peer or a hop: tolerates ``[v6]``, ``[v6]:port``, ``v4:port``, spaces,
    and unmaps IPv4-mapped IPv6. ``None`` when it is not an address."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and not _is_port(text[end + 1 :])):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_port(suffix: str) -> bool:
    return suffix[0] == ":" and suffix[1:].isascii() and suffix[1:].isdigit()


def _fast_normalise(peer: str) -> str:
    # Sockets already report canonical text; only IPv6 may hide an IPv4-mapped address.
    if ":" not in peer:
        return peer
    ip = parse_ip(peer)
    return peer if ip is None else str(ip)


def _forwarded_for(element: str) -> str:
    """The ``for=`` value of one RFC 7239 element, unquoted; "" when absent (stops the walk)."""
    for pair in element.split(";"):
        key, _, value = pair.strip().partition("=")
        if key.lower() == "for":
            return value.strip().strip('"')
    return ""
