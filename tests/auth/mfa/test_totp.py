"""TOTP: RFC vectors, an independent client (oathtool), the window, replay, sealing at rest."""

from __future__ import annotations

import asyncio
import base64
import binascii
import shutil
import subprocess

import pyotp
import pytest
from sqlalchemy import select, update
from tests.auth.mfa.helpers import START, MfaEnv

from sekisho.auth.mfa import InvalidCode, LastFactor, MfaUsageError, ReplayedCode
from sekisho.auth.mfa.totp import TotpCodes, normalize_code, valid_secret
from sekisho.auth.sealing import SealError
from sekisho.store.tables import totp_secrets

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()

# RFC 6238 Appendix B, SHA-1 column (8 digits).
RFC6238_SHA1 = [
    (59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
    (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130"),
]
# RFC 4226 Appendix D (HOTP, counters 0..9).
RFC4226 = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
           "399871", "520489"]


def codes(now: float = START) -> TotpCodes:
    return TotpCodes(issuer="Sekisho", clock=lambda: now)


@pytest.mark.parametrize(("unix_time", "expected"), RFC6238_SHA1)
def test_rfc6238_appendix_b_sha1_vectors_TO_02(unix_time: int, expected: str) -> None:
    """TO-02: the SHA-1 vectors, 8 digits via pyotp; our 6-digit code is their last six."""
    assert pyotp.TOTP(RFC_SECRET, digits=8, interval=30).at(unix_time) == expected
    ours = codes(unix_time)
    assert ours.code_at(secret=RFC_SECRET, step=unix_time // 30) == expected[-6:]
    assert ours.match(secret=RFC_SECRET, code=expected[-6:]) == unix_time // 30


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(RFC4226)))
def test_rfc4226_appendix_d_hotp_vectors_TO_02(counter: int, expected: str) -> None:
    assert codes().code_at(secret=RFC_SECRET, step=counter) == expected


def test_codes_match_oathtool_TO_02() -> None:
    """An independent implementation (oathtool) computes the same codes for our secrets."""
    oathtool = shutil.which("oathtool")
    assert oathtool, "oathtool must be installed (apt-get install oathtool)"
    ours = codes()
    secret = ours.new_secret()
    for moment in (0, 59, 1_111_111_109, 1_700_000_000, 2_000_000_000):
        out = subprocess.run(
            [oathtool, "--totp=sha1", "--digits=6", "--time-step-size=30s", "--base32",
             f"--now=@{moment}", secret], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == ours.code_at(secret=secret, step=moment // 30)


def test_new_secret_is_160_bits_of_base32_TO_01() -> None:
    secret = codes().new_secret()
    assert len(secret) == 32 and len(base64.b32decode(secret)) == 20
    assert valid_secret(secret)
    assert not valid_secret(secret[:16]) and not valid_secret("!" * 32)


def test_uri_and_qr_TO_02() -> None:
    ours = codes()
    uri = ours.uri(secret=RFC_SECRET, username="alice")
    assert uri.startswith("otpauth://totp/Sekisho:alice?")
    assert "issuer=Sekisho" in uri and f"secret={RFC_SECRET}" in uri
    svg = ours.qr_svg(uri=uri)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")


@pytest.mark.parametrize(("typed", "expected"), [
    ("123456", "123456"), ("123 456", "123456"), (" 123456 ", "123456"),
    ("12345", None), ("1234567", None), ("12345a", None), ("１２３４５６", None), ("", None),
])
def test_code_normalisation(typed: str, expected: str | None) -> None:
    assert normalize_code(typed) == expected


async def _enrolled(env: MfaEnv, *, groups: tuple[str, ...] = ()) -> tuple[int, str]:
    user = await env.add_user(groups=groups)
    secret = env.mfa.totp_new_secret()
    code = codes(env.clock()).code_at(secret=secret, step=int(env.clock()) // 30)
    await env.mfa.totp_enrol(user_id=user.id, secret=secret, code=code)
    return user.id, secret


def _code(env: MfaEnv, secret: str, offset: int = 0) -> str:
    return codes().code_at(secret=secret, step=int(env.clock()) // 30 + offset)


async def test_binding_needs_a_correct_code_TO_03(quick_env: MfaEnv) -> None:
    user = await quick_env.add_user()
    secret = quick_env.mfa.totp_new_secret()
    wrong = f"{(int(_code(quick_env, secret)) + 1) % 1_000_000:06d}"
    with pytest.raises(InvalidCode):
        await quick_env.mfa.totp_enrol(user_id=user.id, secret=secret, code=wrong)
    assert not (await quick_env.mfa.summary(user_id=user.id)).totp
    with pytest.raises(InvalidCode):  # an unbound seed cannot log in
        await quick_env.mfa.totp_verify(user_id=user.id, code=_code(quick_env, secret))
    with pytest.raises(MfaUsageError):
        await quick_env.mfa.totp_enrol(user_id=user.id, secret="short", code="123456")
    assert quick_env.auditor.named("authn_factor_bound:totp") == []


async def test_enrolment_code_cannot_log_in_afterwards_TO_05(quick_env: MfaEnv) -> None:
    user_id, secret = await _enrolled(quick_env)
    assert (await quick_env.mfa.summary(user_id=user_id)).totp
    assert len(quick_env.auditor.named("authn_factor_bound:totp")) == 1
    with pytest.raises(ReplayedCode):
        await quick_env.mfa.totp_verify(user_id=user_id, code=_code(quick_env, secret))


@pytest.mark.parametrize(("offset", "accepted"), [(-2, False), (-1, True), (0, True),
                                                  (1, True), (2, False)])
async def test_window_is_one_step_either_side_TO_04(
    quick_env: MfaEnv, offset: int, accepted: bool
) -> None:
    user_id, secret = await _enrolled(quick_env)
    quick_env.clock.advance(300)  # well past the enrolment step
    code = _code(quick_env, secret, offset)
    if accepted:
        await quick_env.mfa.totp_verify(user_id=user_id, code=code)
    else:
        with pytest.raises(InvalidCode):
            await quick_env.mfa.totp_verify(user_id=user_id, code=code)


async def test_replay_refused_and_audited_TO_05_TO_06(state_env: MfaEnv) -> None:
    user_id, secret = await _enrolled(state_env)
    state_env.clock.advance(60)
    code = _code(state_env, secret)
    await state_env.mfa.totp_verify(user_id=user_id, code=code)
    with pytest.raises(ReplayedCode):
        await state_env.mfa.totp_verify(user_id=user_id, code=code)
    events = state_env.auditor.named("authn_token_reuse:totp")
    assert len(events) == 1 and events[0].level == "CRITICAL"
    assert events[0].account == str(user_id) and events[0].details is None


async def test_older_step_after_newer_refused_TO_05(state_env: MfaEnv) -> None:
    user_id, secret = await _enrolled(state_env)
    state_env.clock.advance(90)
    await state_env.mfa.totp_verify(user_id=user_id, code=_code(state_env, secret, 0))
    with pytest.raises(ReplayedCode):
        await state_env.mfa.totp_verify(user_id=user_id, code=_code(state_env, secret, -1))
    await state_env.mfa.totp_verify(user_id=user_id, code=_code(state_env, secret, 1))


async def test_concurrent_same_code_exactly_one_succeeds_TO_05(env: MfaEnv) -> None:
    """Twenty simultaneous submissions (on Redis spread over two replicas, which share the
    state; memory state is one process by definition): exactly one is accepted."""
    user_id, secret = await _enrolled(env)
    env.clock.advance(60)
    code = _code(env, secret)
    replicas = [env.mfa, env.replica()] if env.shared else [env.mfa]
    results = await asyncio.gather(
        *(replicas[i % len(replicas)].totp_verify(user_id=user_id, code=code) for i in range(20)),
        return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, ReplayedCode) for r in results if r is not None)


async def test_seed_sealed_at_rest_ST_07(env: MfaEnv) -> None:
    user_id, secret = await _enrolled(env)
    async with env.db.transaction() as conn:
        sealed = bytes((await conn.execute(select(totp_secrets.c.sealed))).scalar_one())
    raw_seed = base64.b32decode(secret)
    assert secret.encode() not in sealed and raw_seed not in sealed
    with pytest.raises((binascii.Error, ValueError)):
        base64.b32decode(sealed, casefold=True)
    # Only the data key opens it: a replica with another key cannot verify.
    env.clock.advance(60)
    with pytest.raises(SealError):
        await env.replica(data_key=b"\x01" * 32).totp_verify(
            user_id=user_id, code=_code(env, secret))
    await env.mfa.totp_verify(user_id=user_id, code=_code(env, secret))


@pytest.mark.parametrize("position", [0, 3, 10, 30, -1])
async def test_tampered_seed_rejected_ST_07(quick_env: MfaEnv, position: int) -> None:
    user_id, secret = await _enrolled(quick_env)
    async with quick_env.db.transaction(write=True) as conn:
        sealed = bytearray((await conn.execute(select(totp_secrets.c.sealed))).scalar_one())
        sealed[position] ^= 0x01
        await conn.execute(update(totp_secrets).values(sealed=bytes(sealed)))
    quick_env.clock.advance(60)
    with pytest.raises(SealError) as caught:
        await quick_env.mfa.totp_verify(user_id=user_id, code=_code(quick_env, secret))
    assert secret not in str(caught.value)


async def test_seed_moved_to_another_user_does_not_open_ST_07(quick_env: MfaEnv) -> None:
    alice, secret = await _enrolled(quick_env)
    bob, _ = await _enrolled(quick_env)
    async with quick_env.db.transaction(write=True) as conn:
        sealed = (await conn.execute(select(totp_secrets.c.sealed)
                                     .where(totp_secrets.c.user_id == alice))).scalar_one()
        await conn.execute(update(totp_secrets).where(totp_secrets.c.user_id == bob)
                           .values(sealed=sealed))
    quick_env.clock.advance(60)
    with pytest.raises(SealError):
        await quick_env.mfa.totp_verify(user_id=bob, code=_code(quick_env, secret))


async def test_replacing_invalidates_the_old_seed_TO_09(quick_env: MfaEnv) -> None:
    user_id, old = await _enrolled(quick_env)
    quick_env.clock.advance(60)
    new = quick_env.mfa.totp_new_secret()
    await quick_env.mfa.totp_enrol(user_id=user_id, secret=new, code=_code(quick_env, new))
    quick_env.clock.advance(60)
    with pytest.raises(InvalidCode):
        await quick_env.mfa.totp_verify(user_id=user_id, code=_code(quick_env, old))
    await quick_env.mfa.totp_verify(user_id=user_id, code=_code(quick_env, new))
    bound = quick_env.auditor.named("authn_factor_bound:totp")
    assert [e.details and e.details["replaced"] for e in bound] == [False, True]


async def test_remove_last_factor_of_required_user_refused_WA_08(quick_env: MfaEnv) -> None:
    admin, _ = await _enrolled(quick_env, groups=("admins",))
    with pytest.raises(LastFactor):
        await quick_env.mfa.totp_remove(user_id=admin)
    assert (await quick_env.mfa.summary(user_id=admin)).totp
    staff, _ = await _enrolled(quick_env, groups=("staff",))
    await quick_env.mfa.totp_remove(user_id=staff)
    assert not (await quick_env.mfa.summary(user_id=staff)).totp
    assert len(quick_env.auditor.named("authn_factor_removed:totp")) == 1
    await quick_env.mfa.totp_remove(user_id=staff)  # nothing left: a no-op, no event
    assert len(quick_env.auditor.named("authn_factor_removed:totp")) == 1


def test_mfa_required_by_group(quick_env: MfaEnv) -> None:
    assert quick_env.mfa.mfa_required(groups=["staff", "admins"])
    assert not quick_env.mfa.mfa_required(groups=["staff"])
    quick_env.mfa_settings = {"required_groups": ["*"]}
    assert quick_env.replica().mfa_required(groups=[])
