"""The gateway's own cookies: names, reading on the hot path, and Set-Cookie values (SE-02)."""

from __future__ import annotations

from dataclasses import dataclass

from sekisho.config import Settings


@dataclass(frozen=True, slots=True)
class CookieNames:
    session: str
    pre: str
    lang: str
    device: str
    secure: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> CookieNames:
        https = settings.server.https
        prefix = "__Host-" if https else ""
        base = settings.session.cookie_name
        return cls(
            session=prefix + base,
            pre=f"{prefix}{base}_pre",
            lang=f"{prefix}{base}_lang",
            device=f"{prefix}{base}_device",
            secure=https,
        )

    @property
    def all(self) -> frozenset[str]:
        """Every name the gateway owns, with and without the prefix (stripped upstream, PX-07)."""
        names = {self.session, self.pre, self.lang, self.device}
        return frozenset(names | {n.removeprefix("__Host-") for n in names})

    def set(self, name: str, value: str, *, max_age: int | None = None) -> str:
        """A Set-Cookie value: HttpOnly, SameSite=Lax, Path=/, no Domain, Secure under https."""
        parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)

    def clear(self, name: str) -> str:
        return self.set(name, "", max_age=0)


def read_cookie(header: bytes | None, name: str) -> str | None:
    """The last value of cookie ``name`` in a Cookie header, without a full parse."""
    if not header:
        return None
    found = None
    wanted = name.encode("latin-1")
    for part in header.split(b";"):
        key, sep, value = part.strip().partition(b"=")
        if sep and key == wanted:
            found = value.strip().strip(b'"').decode("latin-1")
    return found


def cookie_header(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    values = [v for k, v in headers if k == b"cookie"]
    if not values:
        return None
    return b"; ".join(values)
