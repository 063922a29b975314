"""Canonical usernames and group names."""

from __future__ import annotations

import pytest

from sekisho.auth.usernames import InvalidUsername, canonical_group, canonical_username


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("alice", "alice"),
        ("Alice", "alice"),
        ("ALICE", "alice"),
        ("  alice\t", "alice"),
        ("Ａｌｉｃｅ", "alice"),  # fullwidth (NFKC)
        ("\u212aelvin", "kelvin"),  # KELVIN SIGN
        ("Straße", "strasse"),  # casefold, not lower
        ("ﬁona", "fiona"),  # ligature (NFKC)
        ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),  # final sigma folds to sigma
        ("cafe\u0301", "caf\u00e9"),  # composed
        ("たろう", "たろう"),
        ("ﾀﾛｳ", "タロウ"),  # halfwidth katakana (NFKC)
        ("alice@example.com", "alice@example.com"),
        ("a.b-c_d", "a.b-c_d"),
        ("x" * 64, "x" * 64),
    ],
)
def test_canonical_forms(raw: str, canonical: str) -> None:
    assert canonical_username(raw) == canonical


def test_variants_are_one_account() -> None:
    variants = ["alice", "ALICE", "Ａｌｉｃｅ", " Alice "]
    assert {canonical_username(v) for v in variants} == {"alice"}


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "\u3000",  # ideographic space only
        "alice smith",
        "alice\tsmith",
        "alice\u00a0smith",  # no-break space
        "alice\nroot",
        "alice\r\nX-Injected: 1",
        "ali\u200bce",  # zero-width space (Cf)
        "ali\u200dce",  # zero-width joiner (Cf)
        "\u202ealice",  # right-to-left override
        "alice\x00",
        "ali\x7fce",
        "alice\ue000",  # private use
        "x" * 65,
        "x" * 1_000_000,
    ],
)
def test_rejected(raw: str) -> None:
    with pytest.raises(InvalidUsername) as caught:
        canonical_username(raw)
    message = str(caught.value)
    assert message
    if raw.strip():
        assert raw.strip()[:5] not in message  # never echoes the input


def test_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        canonical_username("hunter2 is my password")
    with pytest.raises(ValueError) as caught:
        canonical_username("SecretPassw0rd! with spaces")
    assert "SecretPassw0rd" not in str(caught.value)


def test_not_text() -> None:
    with pytest.raises(InvalidUsername):
        canonical_username(b"alice")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("admins", "admins"), ("Admins", "Admins"), (" ops ", "ops"), ("Ｏｐｓ", "Ops")],
)
def test_group_names(raw: str, canonical: str) -> None:
    assert canonical_group(raw) == canonical


@pytest.mark.parametrize("raw", ["", "a,b", "two words", "x" * 65, "a\nb"])
def test_bad_group_names(raw: str) -> None:
    with pytest.raises(InvalidUsername):
        canonical_group(raw)
