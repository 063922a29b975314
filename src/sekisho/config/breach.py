"""The ``[breach]`` section: which breached-password sources to ask, and how (PW-08, PW-10..12).

``mode`` chooses the sources:

``auto``     (default) the offline corpus at ``corpus_path`` when that file exists; nothing
             otherwise (the common-password list still applies). No download and no outbound
             request is needed to start; a corpus imported later is picked up.
``offline``  the offline corpus; the gateway refuses to start without a usable one.
``online``   the HIBP range API (or a mirror at ``api_url``), k-anonymity (PW-10).
``both``     the offline corpus first; the range API for what the corpus does not list.
``off``      no breach check (the common and context lists still apply).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from sekisho.config.base import _Strict

HIBP_API = "https://api.pwnedpasswords.com"


class BreachSettings(_Strict):
    mode: Literal["auto", "offline", "online", "both", "off"] = "auto"
    corpus_path: str = "./pwned-passwords.sekisho"
    reload_interval: float = Field(default=30.0, ge=1.0, le=3600.0)
    api_url: str = HIBP_API
    # The whole range request, connect to last byte (PW-11: 2 s).
    timeout: float = Field(default=2.0, gt=0.0, le=30.0)
    # When no source can answer while a password is being set: accept it ("open") or refuse
    # it ("closed"). Accounts in fail_closed_groups always fail closed (PW-11 default:
    # closed for admins, open with an event for everyone else). Logins never fail closed.
    fail: Literal["open", "closed"] = "open"
    fail_closed_groups: list[str] = Field(default_factory=lambda: ["admins"])
    # A password seen fewer times than this in the corpus is accepted.
    min_count: int = Field(default=1, ge=1, le=1_000_000)
    # Range answers kept in memory: prefixes, and how long (0 = no cache).
    cache_size: int = Field(default=10_000, ge=0, le=1_048_576)
    cache_ttl: float = Field(default=3600.0, ge=0.0, le=7 * 86400.0)
    check_at_login: bool = True

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL, e.g. https://api.pwnedpasswords.com")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must not carry a query, fragment or credentials")
        return value.rstrip("/")

    @field_validator("corpus_path")
    @classmethod
    def _corpus_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a file")
        return value
