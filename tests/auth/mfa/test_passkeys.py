"""Passkeys: real py_webauthn verification of responses from a software authenticator, with
tampered payloads (origin, RP ID, foreign credential, replayed/expired/wrong challenge, UV,
counters, backup flags, duplicate IDs), on memory and Redis state, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tests.auth.mfa.helpers import ORIGIN, RP_ID, MfaEnv
from tests.auth.mfa.soft_authenticator import ExcludedCredential, SoftAuthenticator, b64url

from sekisho.auth.mfa import (
    DuplicateCredential,
    MfaUsageError,
    PasskeyInfo,
    SignCountRegression,
    WebAuthnRejected,
)
from sekisho.store import User


async def register(env: MfaEnv, user: User, auth: SoftAuthenticator, *, name: str = "",
                   binding: str = "reg", **tamper: Any) -> PasskeyInfo:
    options = await env.mfa.passkey_registration_options(user=user, binding=binding)
    response = auth.register(options, **tamper)
    return await env.mfa.passkey_register(user=user, binding=binding, name=name,
                                          response_json=json.dumps(response))


async def login(env: MfaEnv, auth: SoftAuthenticator, *, user: User | None,
                passwordless: bool = False, binding: str = "login", **tamper: Any) -> int:
    options = await env.mfa.passkey_authentication_options(
        user=user, binding=binding, passwordless=passwordless)
    response = auth.assertion(options, **tamper)
    return await env.mfa.passkey_authenticate(
        binding=binding, response_json=json.dumps(response), user=user,
        passwordless=passwordless)


def soft(**kwargs: Any) -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN, **kwargs)


# -- registration ----------------------------------------------------------------------------

async def test_registration_options_WA_01_WA_02_WA_05(quick_env: MfaEnv) -> None:
    user = await quick_env.add_user("alice")
    auth = soft()
    await register(quick_env, user, auth)
    options = json.loads(
        await quick_env.mfa.passkey_registration_options(user=user, binding="again"))
    assert options["rp"] == {"id": RP_ID, "name": "Sekisho"}
    assert options["timeout"] == 300_000
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -257]
    assert len(options["challenge"]) >= 86  # 64 bytes, base64url
    assert [c["id"] for c in options["excludeCredentials"]] == [
        b64url(next(iter(auth.credentials)))]
    with pytest.raises(ExcludedCredential):  # the authenticator honours the list
        auth.register(options)


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "RS256"])
async def test_register_and_authenticate_WA_05(env: MfaEnv, algorithm: str) -> None:
    user = await env.add_user()
    auth = soft(algorithm=algorithm)
    info = await register(env, user, auth, name="Laptop")
    assert info.name == "Laptop" and info.last_used_at is None
    assert await login(env, auth, user=user) == user.id
    assert await login(env, auth, user=None, passwordless=True) == user.id
    summary = await env.mfa.summary(user_id=user.id)
    assert summary.has_second_factor and summary.passkeys[0].last_used_at is not None
    assert len(env.auditor.named("authn_factor_bound:passkey")) == 1


async def test_unsupported_algorithm_refused_WA_05(quick_env: MfaEnv) -> None:
    with pytest.raises(WebAuthnRejected):
        await register(quick_env, await quick_env.add_user(), soft(algorithm="ES384"))


async def test_duplicate_credential_id_refused_WA_05(env: MfaEnv) -> None:
    alice, bob = await env.add_user(), await env.add_user()
    auth = soft()
    await register(env, alice, auth, credential_id=b"\x07" * 32)
    with pytest.raises(DuplicateCredential):
        await register(env, bob, soft(), credential_id=b"\x07" * 32)
    assert not (await env.mfa.summary(user_id=bob.id)).passkeys


async def test_credential_id_over_1023_bytes_refused_WA_05(quick_env: MfaEnv) -> None:
    user = await quick_env.add_user()
    with pytest.raises(WebAuthnRejected):
        await register(quick_env, user, soft(), credential_id=b"\x01" * 1024)
    await register(quick_env, user, soft(), credential_id=b"\x01" * 1023)


@pytest.mark.parametrize("tamper", [
    {"origin": "https://evil.example"}, {"rp_id": "evil.example"},
    {"challenge": b"\x00" * 64}, {"origin": "http://gw.example.test"},
])
async def test_tampered_registration_refused_WA_02(quick_env: MfaEnv,
                                                   tamper: dict[str, Any]) -> None:
    user = await quick_env.add_user()
    with pytest.raises(WebAuthnRejected):
        await register(quick_env, user, soft(), **tamper)
    assert not (await quick_env.mfa.summary(user_id=user.id)).passkeys


async def test_registration_challenge_bound_to_user_and_session_WA_01(
    quick_env: MfaEnv,
) -> None:
    alice, bob = await quick_env.add_user(), await quick_env.add_user()
    options = await quick_env.mfa.passkey_registration_options(user=alice, binding="s1")
    response = json.dumps(soft().register(options))
    with pytest.raises(WebAuthnRejected):  # same session binding, other user
        await quick_env.mfa.passkey_register(user=bob, binding="s1", response_json=response,
                                             name="")
    options = await quick_env.mfa.passkey_registration_options(user=alice, binding="s1")
    response = json.dumps(soft().register(options))
    with pytest.raises(WebAuthnRejected):  # other session
        await quick_env.mfa.passkey_register(user=alice, binding="s2", response_json=response,
                                             name="")


async def test_backup_flags_recorded_WA_07(quick_env: MfaEnv) -> None:
    user = await quick_env.add_user()
    info = await register(quick_env, user, soft(backup_eligible=True, backed_up=True))
    assert info.backup_eligible and info.backed_up


# -- authentication: tampering ---------------------------------------------------------------

@pytest.mark.parametrize("tamper", [
    {"origin": "https://evil.example"}, {"origin": "https://gw.example.test:8443"},
    {"rp_id": "evil.example"}, {"challenge": b"\x01" * 64}, {"corrupt_signature": True},
])
async def test_tampered_assertion_refused_WA_01_WA_02(state_env: MfaEnv,
                                                      tamper: dict[str, Any]) -> None:
    user = await state_env.add_user()
    auth = soft()
    await register(state_env, user, auth)
    with pytest.raises(WebAuthnRejected) as caught:
        await login(state_env, auth, user=user, **tamper)
    assert caught.value.code == "webauthn_rejected"
    assert await login(state_env, auth, user=user) == user.id  # the real one still works


async def test_foreign_credential_refused_WA_04(state_env: MfaEnv) -> None:
    """User B's valid assertion inside user A's ceremony is refused."""
    alice, bob = await state_env.add_user(), await state_env.add_user()
    alice_auth, bob_auth = soft(), soft()
    await register(state_env, alice, alice_auth)
    await register(state_env, bob, bob_auth)
    options = await state_env.mfa.passkey_authentication_options(user=alice, binding="b",
                                                           passwordless=False)
    foreign = bob_auth.assertion(options, credential_id=next(iter(bob_auth.credentials)))
    with pytest.raises(WebAuthnRejected, match="another user"):
        await state_env.mfa.passkey_authenticate(binding="b", response_json=json.dumps(foreign),
                                           user=alice, passwordless=False)


async def test_user_handle_must_match_owner_WA_04(quick_env: MfaEnv) -> None:
    alice, bob = await quick_env.add_user(), await quick_env.add_user()
    auth = soft()
    await register(quick_env, alice, auth)
    await register(quick_env, bob, soft())
    bob_handle = json.loads(await quick_env.mfa.passkey_registration_options(
        user=bob, binding="x"))["user"]["id"]
    from tests.auth.mfa.soft_authenticator import unb64url

    for user, passwordless in ((alice, False), (None, True)):
        with pytest.raises(WebAuthnRejected, match="user handle"):
            await login(quick_env, auth, user=user, passwordless=passwordless,
                        user_handle=unb64url(bob_handle))
    with pytest.raises(WebAuthnRejected, match="without a user handle"):
        await login(quick_env, auth, user=None, passwordless=True, user_handle=None)
    # A second-factor assertion may omit the handle (non-discoverable credentials do).
    assert await login(quick_env, auth, user=alice, user_handle=None) == alice.id


async def test_uv_required_for_passwordless_only_WA_03(state_env: MfaEnv) -> None:
    user = await state_env.add_user()
    auth = soft(user_verification=False)
    await register(state_env, user, auth)
    with pytest.raises(WebAuthnRejected):
        await login(state_env, auth, user=None, passwordless=True)
    with pytest.raises(WebAuthnRejected):
        await login(state_env, auth, user=user, passwordless=True)
    assert await login(state_env, auth, user=user) == user.id  # fine as a second factor
    options = json.loads(await state_env.mfa.passkey_authentication_options(
        user=None, binding="p", passwordless=True))
    assert options["userVerification"] == "required" and options["allowCredentials"] == []


async def test_second_factor_needs_the_user(quick_env: MfaEnv) -> None:
    with pytest.raises(MfaUsageError):
        await quick_env.mfa.passkey_authentication_options(user=None, binding="b",
                                                           passwordless=False)


async def test_unknown_credential_and_bad_signature_look_alike_WA_09(
    quick_env: MfaEnv,
) -> None:
    user = await quick_env.add_user()
    auth = soft()
    await register(quick_env, user, auth)
    stranger = soft()
    stranger.register(json.loads(await quick_env.mfa.passkey_registration_options(
        user=user, binding="unused")))  # a credential the gateway never stored
    errors = []
    for who, tamper in ((stranger, {}), (auth, {"corrupt_signature": True})):
        with pytest.raises(WebAuthnRejected) as caught:
            await login(quick_env, who, user=None, passwordless=True, **tamper)
        errors.append((type(caught.value), caught.value.code))
    assert errors[0] == errors[1] == (WebAuthnRejected, "webauthn_rejected")


@pytest.mark.parametrize("body", ["", "not json", "[]", '{"id": "x"}', "{" * 70_000,
                                  json.dumps({"id": "AA", "rawId": "AA", "type": "public-key",
                                              "response": {"clientDataJSON": "!!"}})])
async def test_malformed_response_refused(quick_env: MfaEnv, body: str) -> None:
    user = await quick_env.add_user()
    await register(quick_env, user, soft())
    await quick_env.mfa.passkey_authentication_options(user=user, binding="m",
                                                       passwordless=False)
    with pytest.raises(WebAuthnRejected):
        await quick_env.mfa.passkey_authenticate(binding="m", response_json=body, user=user,
                                                 passwordless=False)


# -- challenges ------------------------------------------------------------------------------

async def test_replayed_assertion_refused_WA_01(state_env: MfaEnv) -> None:
    user = await state_env.add_user()
    auth = soft(counter=False)  # so only the challenge can stop the replay
    await register(state_env, user, auth)
    options = await state_env.mfa.passkey_authentication_options(user=user, binding="r",
                                                           passwordless=False)
    response = json.dumps(auth.assertion(options))
    await state_env.mfa.passkey_authenticate(binding="r", response_json=response, user=user,
                                       passwordless=False)
    with pytest.raises(WebAuthnRejected, match="no challenge"):
        await state_env.mfa.passkey_authenticate(binding="r", response_json=response, user=user,
                                           passwordless=False)


async def test_challenge_consumed_by_a_failed_attempt_WA_01(state_env: MfaEnv) -> None:
    user = await state_env.add_user()
    auth = soft()
    await register(state_env, user, auth)
    options = await state_env.mfa.passkey_authentication_options(user=user, binding="f",
                                                           passwordless=False)
    bad = json.dumps(auth.assertion(options, corrupt_signature=True))
    good = json.dumps(auth.assertion(options))
    for response in (bad, good):
        with pytest.raises(WebAuthnRejected):
            await state_env.mfa.passkey_authenticate(binding="f", response_json=response,
                                               user=user, passwordless=False)


async def test_challenge_bound_to_session_WA_01(state_env: MfaEnv) -> None:
    user = await state_env.add_user()
    auth = soft()
    await register(state_env, user, auth)
    options = await state_env.mfa.passkey_authentication_options(user=user, binding="session-a",
                                                           passwordless=False)
    await state_env.mfa.passkey_authentication_options(user=user, binding="session-b",
                                                 passwordless=False)
    with pytest.raises(WebAuthnRejected):
        await state_env.mfa.passkey_authenticate(
            binding="session-b", response_json=json.dumps(auth.assertion(options)),
            user=user, passwordless=False)


@pytest.mark.parametrize(("wait", "ok"), [(299, True), (301, False)])
async def test_challenge_expires_after_300_s_WA_01(state_env: MfaEnv, wait: int, ok: bool) -> None:
    user = await state_env.add_user()
    auth = soft()
    await register(state_env, user, auth)
    options = await state_env.mfa.passkey_authentication_options(user=user, binding="e",
                                                           passwordless=False)
    state_env.clock.advance(wait)
    call = state_env.mfa.passkey_authenticate(binding="e", user=user, passwordless=False,
                                        response_json=json.dumps(auth.assertion(options)))
    if ok:
        assert await call == user.id
    else:
        with pytest.raises(WebAuthnRejected, match=r"expired|no challenge"):
            await call


async def test_concurrent_use_of_one_challenge_exactly_one_succeeds_WA_01(env: MfaEnv) -> None:
    user = await env.add_user()
    auth = soft(counter=False)
    await register(env, user, auth)
    replicas = [env.mfa, env.replica()] if env.shared else [env.mfa]
    options = await env.mfa.passkey_authentication_options(user=user, binding="c",
                                                           passwordless=False)
    response = json.dumps(auth.assertion(options))
    results = await asyncio.gather(*(
        replicas[i % len(replicas)].passkey_authenticate(
            binding="c", response_json=response, user=user, passwordless=False)
        for i in range(10)), return_exceptions=True)
    assert results.count(user.id) == 1
    assert all(isinstance(r, WebAuthnRejected) for r in results if r != user.id)


# -- counters and backup flags ---------------------------------------------------------------

async def test_sign_count_regression_denied_and_alerted_WA_06(env: MfaEnv) -> None:
    user = await env.add_user()
    auth = soft()
    await register(env, user, auth)
    assert await login(env, auth, user=user, sign_count=10) == user.id
    with pytest.raises(SignCountRegression) as caught:
        await login(env, auth, user=user, sign_count=10)
    assert (caught.value.stored, caught.value.received) == (10, 10)
    events = env.auditor.named("authn_webauthn_counter_regression")
    assert len(events) == 1 and events[0].level == "CRITICAL"
    assert events[0].details is not None and events[0].details["stored_count"] == 10
    assert env.alerter.stats().emitted == 1
    with pytest.raises(SignCountRegression):
        await login(env, auth, user=None, passwordless=True, sign_count=3)
    assert await login(env, auth, user=user, sign_count=11) == user.id


async def test_forged_low_counter_raises_no_alert_WA_06(quick_env: MfaEnv) -> None:
    user = await quick_env.add_user()
    auth = soft()
    await register(quick_env, user, auth)
    await login(quick_env, auth, user=user, sign_count=10)
    with pytest.raises(WebAuthnRejected) as caught:
        await login(quick_env, auth, user=user, sign_count=1, corrupt_signature=True)
    assert not isinstance(caught.value, SignCountRegression)
    assert quick_env.alerter.stats().emitted == 0


async def test_always_zero_counter_accepted_WA_06(quick_env: MfaEnv) -> None:
    user = await quick_env.add_user()
    auth = soft(counter=False, backup_eligible=True, backed_up=True)
    await register(quick_env, user, auth)
    for _ in range(3):
        assert await login(quick_env, auth, user=user) == user.id


async def test_backup_eligibility_must_not_change_WA_07(quick_env: MfaEnv) -> None:
    user = await quick_env.add_user()
    synced, device = soft(backup_eligible=True, backed_up=True), soft()
    await register(quick_env, user, synced)
    await register(quick_env, user, device)
    with pytest.raises(WebAuthnRejected, match="backup eligibility"):
        await login(quick_env, synced, user=user, backup_eligible=False, backed_up=False)
    with pytest.raises(WebAuthnRejected):  # BE=0 with BS=1 is impossible
        await login(quick_env, device, user=user, backed_up=True)
    # BS may change (a synced key backed up later): recorded, not refused.
    await login(quick_env, synced, user=user, backed_up=False)
    info = {p.backup_eligible: p for p in (await quick_env.mfa.summary(
        user_id=user.id)).passkeys}
    assert not info[True].backed_up
