"""Portal message catalogs (English, Japanese) and language negotiation."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

LANGUAGES = ("en", "ja")
DEFAULT = "en"


@cache
def catalog(lang: str) -> dict[str, str]:
    text = resources.files(__package__).joinpath(f"{lang}.json").read_text(encoding="utf-8")
    data: dict[str, str] = json.loads(text)
    return data


def translate(lang: str, key: str) -> str:
    return catalog(lang).get(key) or catalog(DEFAULT).get(key, key)


def negotiate(*, query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The first of: ?lang=, the language cookie, Accept-Language by q-value, English."""
    for explicit in (query, cookie):
        if explicit in LANGUAGES:
            return explicit
    best, best_q = DEFAULT, 0.0
    for item in (accept_language or "")[:512].split(","):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.split("-")[0].lower()
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best
