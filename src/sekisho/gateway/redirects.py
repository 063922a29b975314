"""Where the browser may go after login: same-origin paths or allowlisted origins (CR-03)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

_FORBIDDEN = frozenset("\\\r\n\t\0 ")


def safe_return_to(value: str | None, *, allowed_origins: frozenset[str], fallback: str) -> str:
    """``value`` if it is a safe target, else ``fallback``. Never raises."""
    if not value or len(value) > 2048 or not value.isprintable():
        return fallback
    decoded = unquote(unquote(value))
    if any(ch in _FORBIDDEN for ch in value) or any(ch in _FORBIDDEN for ch in decoded):
        return fallback
    if value.startswith("/"):
        if value.startswith("//") or decoded.startswith("//"):
            return fallback
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or parts.username is not None or "@" in parts.netloc:
        return fallback
    try:
        port = parts.port
    except ValueError:
        return fallback
    host = (parts.hostname or "").lower()
    default = 443 if parts.scheme == "https" else 80
    origin = f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")
    return value if origin in allowed_origins else fallback


def origins_for(configured: list[str]) -> frozenset[str]:
    """Normalise configured origins the way safe_return_to builds them (default ports dropped)."""
    out = set()
    for origin in configured:
        parts = urlsplit(origin)
        default = 443 if parts.scheme == "https" else 80
        port = parts.port
        host = (parts.hostname or "").lower()
        out.add(f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}"))
    return frozenset(out)
