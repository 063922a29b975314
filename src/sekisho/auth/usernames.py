"""Canonical usernames and group names.

A username is stored and compared in one canonical form, so that ``Alice``, ``ALICE`` and
fullwidth ``Ａｌｉｃｅ`` are one account: NFKC, then case folding, then NFKC again (folding can
un-normalise), then surrounding whitespace stripped. Control, format and separator characters
inside are refused: they are invisible, spoof other names, or break the ``Remote-User`` header.

Error messages never echo the input (it may be a password typed into the wrong field).
"""

from __future__ import annotations

from sekisho.errors import InvalidUsername

__all__ = [
    "MAX_GROUP",
    "MAX_USERNAME",
    "InvalidUsername",
    "canonical_group",
    "canonical_username",
]

import unicodedata

MAX_USERNAME = 64
MAX_GROUP = 64
# Cc control, Cf format (zero-width joiners, bidi overrides), Cs surrogates, Co private use,
# Cn unassigned, Z* separators (spaces of every width, line and paragraph separators).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def canonical_username(raw: str) -> str:
    """The one stored and compared form of a username. Raises InvalidUsername."""
    value = _canonical(raw, fold=True)
    _check(value, what="username", limit=MAX_USERNAME)
    return value


def canonical_group(raw: str) -> str:
    """A group name: NFKC and stripped, case kept. Commas are refused (header separator)."""
    value = _canonical(raw, fold=False)
    _check(value, what="group name", limit=MAX_GROUP)
    if "," in value:
        raise InvalidUsername("group name must not contain a comma")
    return value


def _canonical(raw: str, *, fold: bool) -> str:
    if not isinstance(raw, str):
        raise InvalidUsername("must be text")
    # Bound the work before normalising: NFKC can expand a string up to 18-fold.
    if len(raw) > 4 * MAX_USERNAME:
        raise InvalidUsername(f"must be at most {MAX_USERNAME} characters")
    value = unicodedata.normalize("NFKC", raw)
    if fold:
        value = unicodedata.normalize("NFKC", value.casefold())
    return value.strip()


def _check(value: str, *, what: str, limit: int) -> None:
    if not value:
        raise InvalidUsername(f"{what} must not be empty")
    if len(value) > limit:
        raise InvalidUsername(f"{what} must be at most {limit} characters")
    for char in value:
        if char.isspace() or unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise InvalidUsername(f"{what} must not contain spaces or control characters")
