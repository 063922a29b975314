"""Managing factors: list, rename, delete, and never the last one (WA-08)."""

from __future__ import annotations

import asyncio

import pytest
from tests.auth.mfa.helpers import MfaEnv
from tests.auth.mfa.test_passkeys import register, soft
from tests.auth.mfa.test_totp import _enrolled

from sekisho.auth.mfa import InvalidName, LastFactor, UnknownPasskey
from sekisho.auth.mfa.passkeys import provider_name


async def test_list_shows_name_dates_and_flags_WA_08(quick_env: MfaEnv) -> None:
    user = await quick_env.add_user()
    google = bytes.fromhex("ea9b8d664d011d213ce4b6b48cb575d4")
    first = await register(quick_env, user, soft(aaguid=google, backup_eligible=True))
    second = await register(quick_env, user, soft(transports=("usb", "nfc", "bogus")),
                            name="  YubiKey\u0000 5\tNFC ")
    summary = await quick_env.mfa.summary(user_id=user.id)
    assert [p.id for p in summary.passkeys] == [first.id, second.id]
    assert first.name == "Google Password Manager" and first.backup_eligible
    assert second.name == "YubiKey 5 NFC" and second.transports == ("usb", "nfc")
    assert all(p.created_at.tzinfo is not None for p in summary.passkeys)
    assert provider_name("00000000-0000-0000-0000-000000000000") == "Passkey"


async def test_rename(quick_env: MfaEnv) -> None:
    alice, bob = await quick_env.add_user(), await quick_env.add_user()
    info = await register(quick_env, alice, soft())
    await quick_env.mfa.passkey_rename(user_id=alice.id, passkey_id=info.id, name="Phone")
    assert (await quick_env.mfa.summary(user_id=alice.id)).passkeys[0].name == "Phone"
    for bad in ("", "   ", "\u0007", "x" * 65):
        with pytest.raises(InvalidName):
            await quick_env.mfa.passkey_rename(user_id=alice.id, passkey_id=info.id, name=bad)
    with pytest.raises(UnknownPasskey):  # not bob's
        await quick_env.mfa.passkey_rename(user_id=bob.id, passkey_id=info.id, name="Mine")
    assert (await quick_env.mfa.summary(user_id=alice.id)).passkeys[0].name == "Phone"


async def test_delete_and_audit(quick_env: MfaEnv) -> None:
    alice, bob = await quick_env.add_user(), await quick_env.add_user()
    info = await register(quick_env, alice, soft())
    with pytest.raises(UnknownPasskey):
        await quick_env.mfa.passkey_delete(user_id=bob.id, passkey_id=info.id)
    await quick_env.mfa.passkey_delete(user_id=alice.id, passkey_id=info.id)
    assert not (await quick_env.mfa.summary(user_id=alice.id)).passkeys
    assert len(quick_env.auditor.named("authn_factor_removed:passkey")) == 1
    with pytest.raises(UnknownPasskey):
        await quick_env.mfa.passkey_delete(user_id=alice.id, passkey_id=info.id)


async def test_last_factor_of_required_user_kept_WA_08(quick_env: MfaEnv) -> None:
    admin = await quick_env.add_user(groups=["admins"])
    one = await register(quick_env, admin, soft())
    two = await register(quick_env, admin, soft())
    await quick_env.mfa.passkey_delete(user_id=admin.id, passkey_id=one.id)
    with pytest.raises(LastFactor) as caught:
        await quick_env.mfa.passkey_delete(user_id=admin.id, passkey_id=two.id)
    assert caught.value.code == "last_factor"
    assert len((await quick_env.mfa.summary(user_id=admin.id)).passkeys) == 1


async def test_totp_then_passkey_removal_keeps_one_WA_08(quick_env: MfaEnv) -> None:
    admin_id, _ = await _enrolled(quick_env, groups=("admins",))
    admin = await quick_env.users.get(admin_id)
    assert admin is not None
    key = await register(quick_env, admin, soft())
    await quick_env.mfa.totp_remove(user_id=admin_id)
    with pytest.raises(LastFactor):
        await quick_env.mfa.passkey_delete(user_id=admin_id, passkey_id=key.id)


async def test_passwordless_user_keeps_a_passkey_WA_08(quick_env: MfaEnv) -> None:
    user = await quick_env.add_user(password=False)
    info = await register(quick_env, user, soft())
    with pytest.raises(LastFactor):
        await quick_env.mfa.passkey_delete(user_id=user.id, passkey_id=info.id)
    optional = await quick_env.add_user()
    info = await register(quick_env, optional, soft())
    await quick_env.mfa.passkey_delete(user_id=optional.id, passkey_id=info.id)


async def test_concurrent_removals_keep_one_factor_WA_08(env: MfaEnv) -> None:
    """Removing both factors at once, from two gateway instances: one removal is refused."""
    admin_id, _ = await _enrolled(env, groups=("admins",))
    admin = await env.users.get(admin_id)
    assert admin is not None
    key = await register(env, admin, soft())
    other = env.replica()
    results = await asyncio.gather(
        env.mfa.totp_remove(user_id=admin_id),
        other.passkey_delete(user_id=admin_id, passkey_id=key.id), return_exceptions=True)
    assert sum(isinstance(r, LastFactor) for r in results) == 1
    assert (await env.mfa.summary(user_id=admin_id)).has_second_factor
