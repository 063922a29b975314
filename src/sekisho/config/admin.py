"""The ``[admin]`` section: who may use the admin pages and the admin API (AD-04, AD-05).

- ``groups``: a portal session whose user is in any of these groups is an admin. An empty
  list turns the admin pages off for every session (the API then takes bearer tokens only).
- ``require_mfa``: admins must have signed in with more than a password (the session's
  ``amr`` names another method than ``pwd``). Off until MFA exists; turn it on once every
  admin has enrolled a second factor (AD-04).
- ``api_token_sha256``: SHA-256 digests (64 hex characters) of the bearer tokens the admin
  API accepts. The tokens themselves are never in the configuration: ``sekisho admin
  api-token`` prints a new one once, with the line to put here.

Every message names its key, e.g. ``admin.api_token_sha256[0]: must be 64 hex characters``.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from sekisho.config.base import _Strict

__all__ = ["AdminSettings"]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_GROUP = re.compile(r"[^\x00-\x1f\x7f,]{1,64}")


def _digest(value: str) -> str:
    value = value.strip().lower()
    if not _DIGEST.fullmatch(value):
        raise ValueError(
            "must be 64 hex characters: the SHA-256 of a token (make one with "
            "`sekisho admin api-token`), never the token itself")
    return value


def _group(value: str) -> str:
    if not _GROUP.fullmatch(value):
        raise ValueError("must be 1-64 characters, no commas or control characters")
    return value


class AdminSettings(_Strict):
    groups: list[Annotated[str, AfterValidator(_group)]] = Field(
        default_factory=lambda: ["sekisho-admins"])
    require_mfa: bool = False
    api_token_sha256: list[Annotated[str, AfterValidator(_digest)]] = Field(
        default_factory=list)
    page_size: int = Field(default=50, ge=10, le=500)
