"""AES-256-GCM sealing of reversible secrets (ST-07): format, binding, tampering, rotation."""

from __future__ import annotations

import pytest

from sekisho.auth.sealing import FORMAT_V1, Sealer, SealError

KEY, OTHER = b"\x11" * 32, b"\x22" * 32


def test_round_trip_and_format_ST_07() -> None:
    sealer = Sealer([KEY])
    sealed = sealer.seal(b"JBSWY3DPEHPK3PXP", purpose="totp-seed", context="7")
    assert sealed[0] == FORMAT_V1 and len(sealed) == 1 + 4 + 12 + 16 + 16
    assert b"JBSWY3DP" not in sealed
    assert sealer.open(sealed, purpose="totp-seed", context="7") == b"JBSWY3DPEHPK3PXP"
    # A fresh nonce each time: the same secret never seals to the same bytes.
    assert sealer.seal(b"x", purpose="p", context="c") != sealer.seal(b"x", purpose="p",
                                                                      context="c")


@pytest.mark.parametrize(("purpose", "context"), [("totp-seed", "8"), ("other", "7"),
                                                  ("totp-seed:7", ""), ("totp-seed", "7 ")])
def test_bound_to_purpose_and_owner_ST_07(purpose: str, context: str) -> None:
    sealer = Sealer([KEY])
    sealed = sealer.seal(b"secret", purpose="totp-seed", context="7")
    with pytest.raises(SealError):
        sealer.open(sealed, purpose=purpose, context=context)


def test_every_byte_is_authenticated_ST_07() -> None:
    sealer = Sealer([KEY])
    sealed = sealer.seal(b"secret", purpose="p", context="c")
    for i in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[i] ^= 0x80
        with pytest.raises(SealError):
            sealer.open(bytes(tampered), purpose="p", context="c")
    for cut in (0, 5, 20, len(sealed) - 1):
        with pytest.raises(SealError):
            sealer.open(sealed[:cut], purpose="p", context="c")


def test_other_key_cannot_open_and_rotation_can_ST_07() -> None:
    old = Sealer([KEY]).seal(b"secret", purpose="p", context="c")
    with pytest.raises(SealError, match="not configured"):
        Sealer([OTHER]).open(old, purpose="p", context="c")
    rotated = Sealer([OTHER, KEY])
    assert rotated.open(old, purpose="p", context="c") == b"secret"
    assert rotated.needs_reseal(old)
    fresh = rotated.seal(b"secret", purpose="p", context="c")
    assert not rotated.needs_reseal(fresh)
    with pytest.raises(SealError):
        Sealer([KEY]).open(fresh, purpose="p", context="c")


def test_keys_are_checked() -> None:
    with pytest.raises(ValueError):
        Sealer([])
    with pytest.raises(ValueError):
        Sealer([b"short"])
