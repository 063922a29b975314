"""Password strength feedback for the change-password page: zxcvbn's score and advice.

This is guidance, not policy: the policy (auth.policy) decides what is accepted; the score
(0-4) and zxcvbn's warning and suggestions help the user choose better (NIST SP 800-63B
recommends such feedback). The user's own words (username, e-mail, name, service names) go
to zxcvbn as ``user_inputs`` so that a password built from them scores low.

Cost. zxcvbn's matching grows faster than linearly with the length (medians measured on
this 2-core machine under load: 1-5 ms at 16 characters, 8-24 ms at 32, 45-85 ms at 64,
with peaks near 200 ms for long digit strings) and the library refuses more than 72. Only
the first :data:`MAX_EVALUATED` code points are scored; a longer password is reported as
scored on its prefix (``truncated``): 32 characters of a passphrase already score 4, and
the cap bounds what one request can cost. zxcvbn also keeps the user
inputs in a module-level dictionary between calls, so calls are serialised with a lock:
without it two threads could score one user's password against another user's words.

zxcvbn's messages are English sentences; each is mapped to a stable code that the portal
translates (``password.zx.<code>``). A message this version does not know is passed through
as ``text:<message>``.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_EVALUATED", "Strength", "estimate"]

MAX_EVALUATED = 32
_MAX_INPUT = 128  # per user input word; they come from the user record and settings

_CODES = {
    "Use a few words, avoid common phrases.": "few_words",
    "No need for symbols, digits, or uppercase letters.": "no_symbols_needed",
    "Add another word or two. Uncommon words are better.": "add_words",
    "Straight rows of keys are easy to guess.": "straight_rows",
    "Short keyboard patterns are easy to guess.": "short_keyboard",
    "Use a longer keyboard pattern with more turns.": "longer_keyboard",
    'Repeats like "aaa" are easy to guess.': "repeats_char",
    'Repeats like "abcabcabc" are only slightly harder to guess than "abc".': "repeats_word",
    "Avoid repeated words and characters.": "avoid_repeats",
    'Sequences like "abc" or "6543" are easy to guess.': "sequences",
    "Avoid sequences.": "avoid_sequences",
    "Recent years are easy to guess.": "recent_years",
    "Avoid recent years.": "avoid_recent_years",
    "Avoid years that are associated with you.": "avoid_your_years",
    "Dates are often easy to guess.": "dates",
    "Avoid dates and years that are associated with you.": "avoid_dates",
    "This is a top-10 common password.": "top10",
    "This is a top-100 common password.": "top100",
    "This is a very common password.": "very_common",
    "This is similar to a commonly used password.": "similar_common",
    "A word by itself is easy to guess.": "single_word",
    "Names and surnames by themselves are easy to guess.": "names_alone",
    "Common names and surnames are easy to guess.": "common_names",
    "Capitalization doesn't help very much.": "capitalization",
    "All-uppercase is almost as easy to guess as all-lowercase.": "all_uppercase",
    "Reversed words aren't much harder to guess.": "reversed",
    "Predictable substitutions like '@' instead of 'a' don't help very much.": "substitutions",
}
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Strength:
    """zxcvbn's verdict. ``warning`` is a code or ""; ``suggestions`` are codes."""

    score: int
    warning: str
    suggestions: tuple[str, ...]
    truncated: bool

    @property
    def codes(self) -> tuple[str, ...]:
        return ((self.warning,) if self.warning else ()) + self.suggestions


def _code(message: str) -> str:
    return _CODES.get(message, f"text:{message}")


def estimate(password: str, *, user_inputs: Sequence[str] = ()) -> Strength:
    """Score the NFC password (its first MAX_EVALUATED code points) with zxcvbn. CPU-bound:
    call it from a thread (``asyncio.to_thread``) in a server."""
    from zxcvbn import zxcvbn  # type: ignore[import-untyped]

    nfc = unicodedata.normalize("NFC", password)
    sample = nfc[:MAX_EVALUATED]
    words = [w[:_MAX_INPUT] for w in user_inputs if w]
    if not sample:
        return Strength(score=0, warning="", suggestions=(_code(
            "Use a few words, avoid common phrases."),), truncated=False)
    with _lock:
        result: dict[str, Any] = zxcvbn(sample, user_inputs=words, max_length=MAX_EVALUATED)
    feedback = result["feedback"]
    return Strength(
        score=int(result["score"]),
        warning=_code(feedback["warning"]) if feedback["warning"] else "",
        suggestions=tuple(_code(s) for s in feedback["suggestions"]),
        truncated=len(nfc) > MAX_EVALUATED,
    )
