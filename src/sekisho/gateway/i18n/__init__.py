"""Portal message catalogs (English, Japanese) and language negotiation."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

LANGUAGES = ("en", "ja")
DEFAULT = "en"


@cache
def catalog(lang: str) -> dict[str, str]:
    """``{lang}.json`` merged with every ``{lang}.*.json`` (one file per portal area).

    A key defined in two files is an error, so one area cannot silently override another.
    """
    files = resources.files(__package__)
    names = sorted(
        f.name for f in files.iterdir()
        if f.name == f"{lang}.json" or (f.name.startswith(f"{lang}.") and f.name.endswith(".json"))
    )
    data: dict[str, str] = {}
    for name in names:
        part: dict[str, str] = json.loads(files.joinpath(name).read_text(encoding="utf-8"))
        duplicate = data.keys() & part.keys()
        if duplicate:
            raise ValueError(f"i18n/{name}: keys already defined: {sorted(duplicate)}")
        data.update(part)
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
