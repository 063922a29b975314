"""Recovery codes: strength, storage as keyed hashes, single use (also under concurrency),
regeneration, human-friendly input."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import select
from tests.auth.mfa.helpers import MfaEnv

from sekisho.auth.mfa import InvalidCode
from sekisho.auth.mfa.recovery import CODE_BITS, RecoveryCodes, normalize
from sekisho.store.tables import recovery_codes

_SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){5}$")


def test_codes_carry_at_least_112_bits_RC_01() -> None:
    codes = RecoveryCodes.generate(10)
    assert CODE_BITS >= 112
    assert len(set(codes)) == 10
    for code in codes:
        assert _SHAPE.match(code)
        assert len(normalize(code) or "") * 5 == CODE_BITS


@pytest.mark.parametrize("variant", [
    lambda c: c.lower(), lambda c: c.replace("-", ""), lambda c: c.replace("-", " "),
    lambda c: f"  {c}\n", lambda c: c.replace("1", "I").replace("0", "o"),
    lambda c: c.replace("1", "l"),
])
def test_typed_forms_normalise(variant: object) -> None:
    code = "7KQ2-M9XD-4RTW-B1CN-Z6HP-03VA"
    assert normalize(variant(code)) == normalize(code) == code.replace("-", "")  # type: ignore[operator]


@pytest.mark.parametrize("bad", ["", "7KQ2-M9XD", "7KQ2-M9XD-4RTW-B1CN-Z6HP-03VU",
                                 "7KQ2-M9XD-4RTW-B1CN-Z6HP-03VA-0000", "x" * 1000])
def test_malformed_codes(bad: str) -> None:
    assert normalize(bad) is None
    assert RecoveryCodes([b"k" * 32]).hashes(user_id=1, code=bad) == []


async def test_stored_as_keyed_hashes_only_RC_01(quick_env: MfaEnv) -> None:
    user = await quick_env.add_user()
    codes = await quick_env.mfa.recovery_generate(user_id=user.id)
    assert len(codes) == 10
    async with quick_env.db.transaction() as conn:
        stored = list((await conn.execute(select(recovery_codes.c.code_hash))).scalars())
    assert len(stored) == 10 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)
    for code in codes:
        assert not any(normalize(code) in h.upper() for h in stored)
    assert (await quick_env.mfa.summary(user_id=user.id)).recovery_remaining == 10
    events = quick_env.auditor.named("authn_recovery_codes_regenerated")
    assert len(events) == 1 and events[0].details == {"count": 10}


async def test_each_code_works_once_RC_02(env: MfaEnv) -> None:
    user = await env.add_user()
    codes = await env.mfa.recovery_generate(user_id=user.id)
    await env.mfa.recovery_use(user_id=user.id, code=codes[3].lower().replace("-", " "))
    with pytest.raises(InvalidCode):
        await env.mfa.recovery_use(user_id=user.id, code=codes[3])
    assert (await env.mfa.summary(user_id=user.id)).recovery_remaining == 9
    used = env.auditor.named("authn_recovery_code_used")
    assert len(used) == 1 and used[0].details == {"remaining": 9}


async def test_concurrent_use_exactly_one_succeeds_RC_02(env: MfaEnv) -> None:
    """20 parallel submissions of one code, over two gateway instances: one success."""
    user = await env.add_user()
    code = (await env.mfa.recovery_generate(user_id=user.id))[0]
    replicas = [env.mfa, env.replica()]
    results = await asyncio.gather(
        *(replicas[i % 2].recovery_use(user_id=user.id, code=code) for i in range(20)),
        return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, InvalidCode) for r in results if r is not None)
    assert (await env.mfa.summary(user_id=user.id)).recovery_remaining == 9


async def test_regenerate_invalidates_every_old_code_RC_03(quick_env: MfaEnv) -> None:
    user = await quick_env.add_user()
    old = await quick_env.mfa.recovery_generate(user_id=user.id)
    new = await quick_env.mfa.recovery_generate(user_id=user.id)
    assert not set(old) & set(new)
    for code in old:
        with pytest.raises(InvalidCode):
            await quick_env.mfa.recovery_use(user_id=user.id, code=code)
    await quick_env.mfa.recovery_use(user_id=user.id, code=new[0])


async def test_code_of_another_user_refused(quick_env: MfaEnv) -> None:
    alice, bob = await quick_env.add_user(), await quick_env.add_user()
    alice_codes = await quick_env.mfa.recovery_generate(user_id=alice.id)
    await quick_env.mfa.recovery_generate(user_id=bob.id)
    with pytest.raises(InvalidCode):
        await quick_env.mfa.recovery_use(user_id=bob.id, code=alice_codes[0])
    with pytest.raises(InvalidCode):
        await quick_env.mfa.recovery_use(user_id=bob.id, code="not a code")
    with pytest.raises(InvalidCode):  # a user without codes
        await quick_env.mfa.recovery_use(user_id=(await quick_env.add_user()).id,
                                         code=alice_codes[1])


async def test_codes_survive_data_key_rotation() -> None:
    old_key, new_key = b"o" * 32, b"n" * 32
    before = RecoveryCodes([old_key])
    after = RecoveryCodes([new_key, old_key])
    code = before.generate(1)[0]
    assert before.hash(user_id=7, code=code) in after.hashes(user_id=7, code=code)
    assert before.hash(user_id=8, code=code) not in after.hashes(user_id=7, code=code)
