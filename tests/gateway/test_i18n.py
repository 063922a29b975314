"""Language negotiation and catalog completeness."""

from __future__ import annotations

import pytest

from sekisho.gateway.i18n import LANGUAGES, catalog, negotiate


def test_catalogs_have_the_same_keys() -> None:
    keys = {lang: set(catalog(lang)) for lang in LANGUAGES}
    assert keys["ja"] == keys["en"]
    assert all(catalog("ja")[k] for k in keys["ja"])


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        (None, None, None, "en"),
        (None, None, "ja-JP,ja;q=0.9,en;q=0.8", "ja"),
        (None, None, "en-US,en;q=0.9,ja;q=0.8", "en"),
        (None, None, "fr-FR,ja;q=0.5", "ja"),
        (None, None, "ja;q=bogus,en;q=0.1", "en"),
        (None, "ja", "en", "ja"),
        ("en", "ja", "ja", "en"),
        ("xx", None, "ja", "ja"),
    ],
)
def test_negotiate(
    query: str | None, cookie: str | None, accept: str | None, expected: str
) -> None:
    assert negotiate(query=query, cookie=cookie, accept_language=accept) == expected
