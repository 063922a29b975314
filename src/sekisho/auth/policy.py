"""The password policy for new passwords (PW-01..PW-05, PW-08, PW-09).

Rules, in order, each a flat ``if bad: raise PasswordRejected(reason, message)``:

``too_long``  more than ``max_length`` code points after NFC (PW-02; checked first, ST-05).
``too_short`` fewer than ``min_length`` code points after NFC (PW-01, PW-03).
``context``   the whole password is derived from the user's context (PW-08c), see below.
``common``    the whole password is on the common-password list (PW-08b), if one is given.
``breached``  the whole password is in the breach corpus (PW-08a), if a check is given;
              raised as :class:`PasswordBreached`, which carries the check's verdict.
``breach_unavailable`` no breach source could answer and this account fails closed (PW-11).

There are no composition rules (PW-05) and no hints or security questions (PW-07).

The context check. Context words are the username, the e-mail address and its local part
(split also at ``.``, ``_``, ``-``, ``+``, ``@``), the display name (whole and word by word),
and the configured ``context_words`` (service and organisation names). Each is compared folded
(NFKC, case-folded, letters and digits only) and also reversed. A password is rejected as
``context`` when, folded and with other punctuation and spaces dropped, it consists *only*
of context words, digits and symbols: ``alice2024!!!!!``, ``!!Alice-Alice-Alice``,
``ecila``, ``acme-alice-2024``, ``4l1c3`` (common digit-for-letter swaps are undone). A
password that merely *contains* a context word among other words
(``purple-password-giraffe-lamp``) is accepted.

Messages never contain the password.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sekisho.auth.passwords import normalize
from sekisho.config.models import PasswordSettings
from sekisho.errors import PasswordRejected

GUIDANCE = (
    "Use a long passphrase of four or more unrelated words, for example four random words "
    "from a dictionary, and use it for this service only. A password manager can create and "
    "remember one for you. Length matters more than symbols or capital letters."
)
# Digit-for-letter swaps accepted when a password is matched against a context word.
_LEET: dict[str, str] = {
    "0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "il", "|": "il", "+": "t",
}  # fmt: skip
_WORD_SPLIT = re.compile(r"[\s._+@\-]+")


@dataclass(frozen=True, slots=True)
class BreachVerdict:
    """What a breach check found. ``count``: times seen (0 when not listed); ``breached``: seen
    at least the configured minimum; ``source``: which source said so ("offline", "online").
    ``unavailable``: no source could answer; ``fail_closed``: refuse the password then."""

    breached: bool = False
    count: int = 0
    source: str = ""
    unavailable: bool = False
    fail_closed: bool = False


class BreachCheck(Protocol):
    """Whether a password is in a breach corpus (PW-08a, PW-10, PW-11).

    Implementations receive the NFC-normalised password and the account's groups, and decide
    from their settings whether an unavailable source fails open or closed (PW-11).
    """

    async def check(self, password: str, *, groups: Sequence[str] = ()) -> BreachVerdict: ...


class CommonCheck(Protocol):
    """Whether a password is on the common-password list (PW-08b). Gets the NFC password."""

    def is_common(self, password: str) -> bool: ...


class PasswordBreached(PasswordRejected):
    """``breached``, with the verdict (source and count) for the audit event."""

    def __init__(self, verdict: BreachVerdict, message: str) -> None:
        super().__init__("breached", message)
        self.verdict = verdict


def _reject(reason: str, why: str) -> PasswordRejected:
    return PasswordRejected(reason, f"{why} {GUIDANCE}")


class PasswordPolicy:
    def __init__(
        self,
        settings: PasswordSettings,
        *,
        breach: BreachCheck | None = None,
        common: CommonCheck | None = None,
    ) -> None:
        self.min_length = settings.min_length
        self.max_length = settings.max_length
        self.context_words = tuple(settings.context_words)
        self._breach = breach
        self._common = common

    async def check(
        self, password: str, *, username: str, email: str = "", display_name: str = "",
        groups: Sequence[str] = (),
    ) -> None:
        """Raise PasswordRejected when ``password`` may not be set for this user."""
        # Bound the normalisation work before doing it; NFC grows a string at most 3-fold.
        nfc = normalize(password) if len(password) <= 4 * self.max_length else None
        if nfc is None or len(nfc) > self.max_length:
            raise _reject("too_long", f"Use at most {self.max_length} characters.")
        if len(nfc) < self.min_length:
            raise _reject("too_short", f"Use at least {self.min_length} characters.")
        words = context_words(
            username=username, email=email, display_name=display_name, extra=self.context_words
        )
        if is_context_derived(nfc, words):
            raise _reject(
                "context",
                "The password is made from your user name, e-mail address, name or the name "
                "of this service, which attackers try first.",
            )
        if self._common is not None and self._common.is_common(nfc):
            raise _reject("common", "This is one of the most commonly used passwords.")
        verdict = BreachVerdict() if self._breach is None else await self._breach.check(
            nfc, groups=groups)
        if verdict.breached:
            raise PasswordBreached(verdict, "This password has appeared in a data breach, so "
                                   f"attackers already have it. {GUIDANCE}")
        if verdict.unavailable and verdict.fail_closed:
            raise _reject("breach_unavailable", "The breached-password check cannot be reached "
                          "right now, so no new password can be accepted. Try again later.")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _alnum(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def context_words(
    *, username: str, email: str = "", display_name: str = "", extra: Iterable[str] = ()
) -> frozenset[str]:
    """The folded context words (and their reversals) for the context check."""
    local = email.rpartition("@")[0] if "@" in email else email
    phrases = [username, email, local, display_name, *extra]
    words: set[str] = set()
    for phrase in phrases:
        folded = _fold(phrase)
        words.add(_alnum(folded))
        words.update(_alnum(part) for part in _WORD_SPLIT.split(folded))
    words = {w for w in words if len(w) >= 2}
    return frozenset(words | {w[::-1] for w in words})


def is_context_derived(password: str, words: frozenset[str]) -> bool:
    """Whether the whole password is built from context words, digits and symbols only."""
    folded = _fold(password)
    text = "".join(ch for ch in folded if ch.isalnum() or ch in _LEET)
    return bool(words) and _segments(text, words)


def _segments(text: str, words: frozenset[str]) -> bool:
    """Word break: ``text`` is a run of words and filler (digits, leet symbols), with at least
    one word. A word matches with digit-for-letter swaps (``4l1c3`` is ``alice``)."""
    # reach[i]: None if text[:i] cannot be built, else whether a word was used on the way.
    reach: list[bool | None] = [None] * (len(text) + 1)
    reach[0] = False
    for i in range(len(text)):
        if reach[i] is None:
            continue
        if text[i].isdigit() or text[i] in _LEET:
            _mark(reach, i + 1, bool(reach[i]))
        for word in words:
            if _matches(text, i, word):
                _mark(reach, i + len(word), True)
    return bool(reach[len(text)])


def _matches(text: str, start: int, word: str) -> bool:
    if start + len(word) > len(text):
        return False
    return all(
        ch == want or want in _LEET.get(ch, "")
        for ch, want in zip(text[start : start + len(word)], word, strict=True)
    )


def _mark(reach: list[bool | None], index: int, used_word: bool) -> None:
    reach[index] = bool(reach[index]) or used_word
