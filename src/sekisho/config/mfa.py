"""The ``[mfa]`` settings: the WebAuthn relying party, the TOTP issuer, who must use MFA.

The relying party comes from here and from ``server.public_origins`` only, never from a
request header (WA-02): ``rp_id`` defaults to the host of the first public origin that is a
domain name, and ``origins`` to the public origins on that RP ID.
:meth:`MfaSettings.relying_party` resolves the defaults; ``Settings`` checks the resolved pair
at load, so a bad combination fails with the key named:
``mfa.rp_id: must be the host of every origin or a parent domain of it (...)``.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from sekisho.config.base import _Strict

__all__ = ["MfaSettings", "check_relying_party"]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _origin(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value[:80]!r} must be an http(s) origin like https://gw.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value[:80]!r} must be an origin (scheme://host[:port]) with no path")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _host(origin: str) -> str:
    return (urlsplit(origin).hostname or "").lower()


def check_relying_party(rp_id: str, origins: list[str]) -> None:
    """Raise ValueError unless ``rp_id`` is each origin's host or a parent domain of it.

    A parent must have at least two labels, so ``com`` (or any bare top-level name) is refused.
    Without the public suffix list ``co.jp`` would still pass: operators choose their own
    domain here, so this catches typos, not malice. An IP address is an RP ID only for the
    very same address (browsers refuse IP RP IDs; the check keeps plain-http demos loadable).
    """
    for origin in origins:
        host = _host(origin)
        if host == rp_id:
            continue
        if _is_ip(host) or _is_ip(rp_id):
            raise ValueError(f"{rp_id!r} must equal the IP host of origin {origin}")
        if not host.endswith("." + rp_id):
            raise ValueError(
                f"{rp_id!r} must be the host of every origin or a parent domain of it "
                f"({origin} is not)")
        if "." not in rp_id:
            raise ValueError(f"{rp_id!r} is a bare top-level name; use the registrable domain")


class MfaSettings(_Strict):
    rp_id: str | None = None
    rp_name: str = Field(default="Sekisho", min_length=1, max_length=64)
    origins: list[str] = Field(default_factory=list)
    issuer: str = Field(default="Sekisho", min_length=1, max_length=64)
    required_groups: list[str] = Field(default_factory=list)
    optional_groups: list[str] = Field(default_factory=list)
    step_up_max_age: int = Field(default=900, ge=60, le=86400)
    challenge_ttl: int = Field(default=300, ge=30, le=900)
    recovery_codes: int = Field(default=10, ge=5, le=20)

    @field_validator("rp_id")
    @classmethod
    def _rp_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if _is_ip(value):
            return value
        if "://" in value or "/" in value or ":" in value:
            raise ValueError("must be a domain name (no scheme, port or path), e.g. example.com")
        labels = value.split(".")
        if len(value) > 253 or not all(_LABEL.match(label) for label in labels):
            raise ValueError("must be a domain name, e.g. example.com")
        return value

    @field_validator("origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return [_origin(v) for v in value]

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        # The issuer becomes part of the otpauth:// label, where ":" separates it.
        if ":" in value or not value.isprintable():
            raise ValueError("must be printable text without ':'")
        return value

    @field_validator("required_groups", "optional_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for group in value:
            if not group.strip() or "," in group:
                raise ValueError("group names must be non-empty and carry no comma")
        return [g.strip() for g in value]

    @model_validator(mode="after")
    def _explicit_pair(self) -> MfaSettings:
        if self.rp_id is not None and self.origins:
            try:
                check_relying_party(self.rp_id, self.origins)
            except ValueError as exc:
                raise ValueError(f"rp_id: {exc}") from None
        return self

    def relying_party(self, public_origins: list[str]) -> tuple[str, tuple[str, ...]]:
        """``(rp_id, origins)`` with the defaults filled in from ``server.public_origins``.

        Default RP ID: the host of the first origin (of ``origins``, else of the public
        origins) that is a domain name, else of the first one (browsers refuse IP RP IDs, so
        ``["http://127.0.0.1:8080", "http://localhost:8080"]`` gives ``localhost``). Default
        origins: the public origins on that RP ID (its host or a subdomain of it).
        """
        candidates = self.origins or public_origins
        rp_id = self.rp_id or next(
            (h for h in map(_host, candidates) if not _is_ip(h)), _host(candidates[0]))
        if self.origins:
            return rp_id, tuple(self.origins)
        return rp_id, tuple(o for o in public_origins if _on(rp_id, _host(o)))

    def check(self, public_origins: list[str]) -> None:
        """Raise ValueError (naming ``mfa.rp_id``) when the resolved pair does not fit."""
        rp_id, origins = self.relying_party(public_origins)
        if not origins:
            raise ValueError(f"mfa.rp_id: no origin of server.public_origins is on {rp_id!r}; "
                             "set mfa.origins")
        try:
            check_relying_party(rp_id, list(origins))
        except ValueError as exc:
            raise ValueError(f"mfa.rp_id: {exc}") from None


def _on(rp_id: str, host: str) -> bool:
    return host == rp_id or (not _is_ip(host) and "." in rp_id and host.endswith("." + rp_id))
