"""The common-password list that works with no download (PW-08b).

The list is the ``passwords`` frequency list that the maintained ``zxcvbn`` package ships:
30,000 passwords, most used first, drawn from leaked password sets. Nothing is typed in by
hand here. It is loaded once, on first use, into a set of folded strings.

The whole password is compared (never a substring), NFC-normalised and case-folded on both
sides: ``PASSWORD`` and ``Password`` count as ``password``. So is its *core*, the password less
the digits, ASCII symbols and spaces at either end, when that core is a list entry of at least
four characters: ``password1234567`` and ``!!Dragon2024!!!!`` are common (padding a common
password to the minimum length is the first thing people do), ``password lamp giraffe`` is
not (it merely contains one). Which entries can ever matter
depends on the length policy: passwords shorter than ``passwords.min_length`` are refused as
``too_short`` before this list is consulted (see docs/breach.md for the figures).
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable
from functools import cache

__all__ = ["CommonPasswords", "common_passwords", "fold"]

_EDGES = string.digits + string.punctuation + " "
_MIN_CORE = 4


def fold(password: str) -> str:
    return unicodedata.normalize("NFC", password).casefold()


class CommonPasswords:
    """A set of common passwords; ``is_common`` implements policy.CommonCheck."""

    def __init__(self, passwords: Iterable[str], *, source: str = "") -> None:
        self._folded = frozenset(fold(p) for p in passwords if p)
        self.source = source

    def is_common(self, password: str) -> bool:
        folded = fold(password)
        if folded in self._folded:
            return True
        core = folded.strip(_EDGES)
        return len(core) >= _MIN_CORE and core != folded and core in self._folded

    def __len__(self) -> int:
        return len(self._folded)

    def count_at_least(self, length: int) -> int:
        """How many entries have at least ``length`` code points (what a policy can meet)."""
        return sum(1 for p in self._folded if len(p) >= length)


@cache
def common_passwords() -> CommonPasswords:
    """The zxcvbn ``passwords`` list, loaded once per process."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    words: list[str] = FREQUENCY_LISTS["passwords"]
    return CommonPasswords(words, source="zxcvbn passwords list")
