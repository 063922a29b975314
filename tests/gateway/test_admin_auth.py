"""Admin authorization rules and the ``[admin]`` settings (AD-04, AD-05)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from sekisho.auth.sessions import Session
from sekisho.cli.admin import new_api_token
from sekisho.config import validate_settings
from sekisho.config.admin import AdminSettings
from sekisho.errors import ConfigError
from sekisho.gateway.portal.admin_auth import (
    MfaRequired,
    is_admin,
    match_token,
    require_admin_mfa,
    token_digest,
)

SESSION = Session(
    key="k" * 64, user_id=7, username="root", groups=("staff", "sekisho-admins"),
    email="", display_name="", created_at=0, auth_at=0, expires_at=10**10, last_seen=0,
    amr=("pwd",),
)


def test_admin_is_a_group_member_with_an_active_unrestricted_session() -> None:
    """AD-05: membership of any configured group makes an admin; nothing else does."""
    settings = AdminSettings()
    assert is_admin(SESSION, settings=settings)
    assert not is_admin(replace(SESSION, groups=("staff",)), settings=settings)
    assert not is_admin(replace(SESSION, state="pending"), settings=settings)
    assert not is_admin(replace(SESSION, restriction="change_password"), settings=settings)
    assert not is_admin(SESSION, settings=AdminSettings(groups=[]))
    assert is_admin(replace(SESSION, groups=("ops",)),
                    settings=AdminSettings(groups=["x", "ops"]))


def test_require_mfa_wants_more_than_a_password() -> None:
    """AD-04: with require_mfa, a password-only session is refused; any other method
    passes. Off by default."""
    require_admin_mfa(SESSION, settings=AdminSettings())
    strict = AdminSettings(require_mfa=True)
    for amr in (("pwd",), ()):
        with pytest.raises(MfaRequired):
            require_admin_mfa(replace(SESSION, amr=amr), settings=strict)
    for amr in (("pwd", "otp"), ("hwk",), ("swk", "user")):
        require_admin_mfa(replace(SESSION, amr=amr), settings=strict)


def test_token_matching() -> None:
    token, digest = new_api_token()
    assert len(token) >= 43 and digest == hashlib.sha256(token.encode()).hexdigest()
    assert token_digest(token) == digest
    other = "0" * 64
    assert match_token(token, digests=[other, digest]) == digest
    assert match_token(token, digests=[other]) is None
    assert match_token(token + "x", digests=[digest]) is None
    assert match_token(token, digests=[]) is None


def test_settings_name_the_key() -> None:
    """Invariant 7: a bad digest or group is refused with the key in the message."""
    digest = "AB" * 32
    ok = validate_settings({"admin": {"api_token_sha256": [f" {digest} "],
                                      "groups": ["ops"], "require_mfa": True}})
    assert ok.admin.api_token_sha256 == [digest.lower()]
    assert validate_settings({}).admin.groups == ["sekisho-admins"]
    with pytest.raises(ConfigError) as bad:
        validate_settings({"admin": {"api_token_sha256": [digest, "not-a-digest"]}})
    assert bad.value.problems == [
        "admin.api_token_sha256[1]: must be 64 hex characters: the SHA-256 of a token "
        "(make one with `sekisho admin api-token`), never the token itself"]
    with pytest.raises(ConfigError) as bad:
        validate_settings({"admin": {"groups": ["a,b"], "colour": "red"}})
    assert sorted(bad.value.problems) == [
        "admin.colour: unknown key",
        "admin.groups[0]: must be 1-64 characters, no commas or control characters"]
