"""The password policy: length, context, common and breached passwords, guidance."""

from __future__ import annotations

import inspect
import string
from collections.abc import Sequence

import pytest

from sekisho.auth.policy import GUIDANCE, BreachVerdict, PasswordPolicy
from sekisho.config.models import PasswordSettings
from sekisho.errors import PasswordRejected
from sekisho.store.tables import metadata

USER = {"username": "alice", "email": "alice.smith@example.com", "display_name": "Alice Smith"}


class Common:
    def __init__(self, *words: str) -> None:
        self.words = set(words)
        self.seen: list[str] = []

    def is_common(self, password: str) -> bool:
        self.seen.append(password)
        return password.lower() in self.words


class Breach:
    def __init__(self, *passwords: str) -> None:
        self.passwords = set(passwords)
        self.seen: list[str] = []

    async def check(self, password: str, *, groups: Sequence[str] = ()) -> BreachVerdict:
        self.seen.append(password)
        listed = password in self.passwords
        return BreachVerdict(breached=listed, count=int(listed), source="test")


def policy(**settings: object) -> PasswordPolicy:
    return PasswordPolicy(
        PasswordSettings(context_words=["Sekisho", "Acme Corp"], **settings),
        common=Common("password1234567", "qwertyuiopasdfg"),
        breach=Breach("Password123456789!"),
    )


async def reason(password: str, check: PasswordPolicy | None = None, **user: str) -> str | None:
    try:
        await (check or policy()).check(password, **{**USER, **user})
    except PasswordRejected as exc:
        return exc.reason
    return None


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("a" * 14, "too_short"),
        ("purple giraffe", "too_short"),
        ("purple giraffes", None),
        ("q" * 15, None),
    ],
)
async def test_minimum_15(password: str, expected: str | None) -> None:
    """PW-01: 14 characters are too short, 15 are enough."""
    assert await reason(password) == expected


@pytest.mark.parametrize(("length", "expected"), [(7, "too_short"), (8, None)])
async def test_minimum_8_with_mandatory_mfa(length: int, expected: str | None) -> None:
    """PW-01: with min_length=8 (MFA-mandatory policy), 7 is rejected and 8 accepted."""
    assert await reason("kx9vq2wz"[:length], policy(min_length=8)) == expected


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("x" * 64, None),
        ("x" * 100, None),
        ("x" * 256, None),
        ("x" * 257, "too_long"),
        ("x" * 1_000_000, "too_long"),
        ("e\u0301" * 256, None),  # 512 code points in, 256 after NFC
    ],
)
async def test_long_passwords(password: str, expected: str | None) -> None:
    """PW-02: at least 64 accepted, cap at 256 code points."""
    assert await reason(password) == expected


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("🔑" * 15, None),  # 15 code points, 60 UTF-8 bytes
        ("🔑" * 14, "too_short"),
        ("🔑" * 14 + "a", None),
        (" " * 15, None),
        ("ねこがにゃあとないたよる", "too_short"),
        ("ねこがにゃあとないたよるのそら", None),
        (string.printable[:95], None),
        ("tab\tand newline\nare fine", None),
    ],
)
async def test_any_unicode_counted_in_code_points(password: str, expected: str | None) -> None:
    """PW-03: ASCII, space and Unicode accepted; length in code points."""
    assert await reason(password) == expected


async def test_length_after_nfc() -> None:
    """PW-04: 15 decomposed é are 30 code points but 15 after NFC."""
    assert await reason("e\u0301" * 15) is None
    assert await reason("e\u0301" * 14) == "too_short"


async def test_nfc_is_what_the_checks_see() -> None:
    """PW-04 with PW-08: the common and breach checks get the NFC password."""
    common, breach = Common(), Breach()
    check = PasswordPolicy(PasswordSettings(), common=common, breach=breach)
    await check.check("cafe\u0301 cre\u0300me bru\u0302le\u0301e", username="bob")
    assert common.seen == breach.seen == ["caf\u00e9 cr\u00e8me br\u00fbl\u00e9e"]


@pytest.mark.parametrize(
    "password",
    [
        "correcthorsebatterystaple",
        "all lowercase passphrase",
        "12345098761234509876",
        "ZZZZZZZZZZZZZZZZ",
    ],
)
async def test_no_composition_rules(password: str) -> None:
    """PW-05: no required character classes."""
    assert await reason(password) is None


@pytest.mark.parametrize(
    "password",
    [
        "alice2024!!!!!!!!",
        "Alice2024!!!!!!!!",
        "!!!alice-alice-alice",
        "alicealicealice",
        "ecilaecilaecila",
        "4l1c3-4l1c3-2024",
        "alice.smith@example.com",
        "alicesmith1990!!",
        "Smith, Alice 1990",
        "Sekisho2025!!!!!",
        "acme-corp-alice-2025",
        "ＳＥＫＩＳＨＯ２０２５！！！！",
        "s3k1sh0-4l1c3-2024!",
        "2025 sekisho 2025",
    ],
)
async def test_context_derived_passwords_are_rejected(password: str) -> None:
    """PW-08c: the username, e-mail, display name, service names and their derivatives."""
    assert await reason(password) == "context"


@pytest.mark.parametrize(
    "password",
    [
        "purple-password-giraffe-lamp",
        "alice in wonderland by carroll",
        "sekisho gate keeper on the old road",
        "my smith is a blacksmith",
        "2024-2025-2026-2027",
        "p@ssw0rd-purple-giraffe",
    ],
)
async def test_containing_a_word_is_fine(password: str) -> None:
    """PW-08: a password that merely contains a listed word among others is accepted."""
    check = PasswordPolicy(
        PasswordSettings(context_words=["Sekisho", "password"]),
        common=Common("password"),
        breach=Breach("password"),
    )
    assert await reason(password, check) is None


async def test_context_uses_this_users_details() -> None:
    """PW-08c: bob's context words do not reject alice's name."""
    assert await reason("alice2024!!!!!!!!", username="bob", email="", display_name="") is None


async def test_common_and_breached() -> None:
    """PW-08a/b: whole-password matches on the common list and in the breach corpus."""
    assert await reason("password1234567") == "common"
    assert await reason("Password123456789!") == "breached"
    assert await reason("Password123456789! and more") is None


async def test_checks_skipped_without_seams() -> None:
    check = PasswordPolicy(PasswordSettings())
    await check.check("password1234567", username="bob")
    await check.check("Password123456789!", username="bob")


async def test_too_long_is_checked_before_any_list() -> None:
    """ST-05: an over-long password reaches no other check."""
    common, breach = Common(), Breach()
    check = PasswordPolicy(PasswordSettings(), common=common, breach=breach)
    with pytest.raises(PasswordRejected):
        await check.check("x" * 1_000_000, username="bob")
    assert common.seen == breach.seen == []


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("kx9vq", "too_short"),
        ("x" * 300, "too_long"),
        ("alice2024!!!!!!!!", "context"),
        ("password1234567", "common"),
        ("Password123456789!", "breached"),
    ],
)
async def test_rejection_says_why_and_how(password: str, expected: str) -> None:
    """PW-09: a machine-readable reason and guidance, never the password itself."""
    with pytest.raises(PasswordRejected) as caught:
        await policy().check(password, **USER)
    exc = caught.value
    assert exc.reason == expected
    assert GUIDANCE in exc.message
    assert "passphrase" in exc.message
    assert len(exc.message) > len(GUIDANCE)  # plus the reason in words
    assert password not in exc.message and password not in str(exc)


def test_no_hints_or_questions() -> None:
    """PW-07: no hint or security-question field in the policy API or the user tables."""
    assert list(inspect.signature(PasswordPolicy.check).parameters) == [
        "self",
        "password",
        "username",
        "email",
        "display_name",
        "groups",
    ]
    columns = [c.name for t in metadata.tables.values() for c in t.columns]
    assert not [c for c in columns if "hint" in c or "question" in c or "answer" in c]
