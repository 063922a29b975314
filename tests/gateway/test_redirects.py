"""Return-to targets after login (CR-03)."""

from __future__ import annotations

import pytest

from sekisho.gateway.redirects import origins_for, safe_return_to

ORIGINS = origins_for(["https://gw.intranet.example", "https://wiki.intranet.example:8443"])

HOSTILE = [
    "//evil.example",
    "//evil.example/path",
    "/\\evil.example",
    "\\/evil",
    "\\\\evil.example",
    "https:evil.example",
    "https:/evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/%2F%2Fevil.example",
    "/%2f/evil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%255C%255Cevil.example",
    "/path\r\nSet-Cookie: x=y",
    "/path%0d%0aLocation:%20https://evil.example",
    "https://gw.intranet.example@evil.example",
    "https://gw.intranet.example:443@evil.example/",
    "https://evil.example",
    "http://gw.intranet.example",
    "https://gw.intranet.example.evil.example/",
    "https://wiki.intranet.example/",
    "ftp://gw.intranet.example/",
    "https://gw.intranet.example:99999/",
    " /leading-space",
    "/\tpath",
    "evil.example",
    "",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_targets_fall_back(payload: str) -> None:
    """CR-03: every open-redirect payload resolves to the fallback."""
    assert safe_return_to(payload, allowed_origins=ORIGINS, fallback="/") == "/"


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/wiki/Main_Page?action=view#top",
        "/app/%E6%97%A5%E6%9C%AC",
        "https://gw.intranet.example/reports",
        "https://GW.intranet.example/x",
        "https://gw.intranet.example:443/x",
        "https://wiki.intranet.example:8443/page",
    ],
)
def test_safe_targets_kept(target: str) -> None:
    """CR-03: same-origin paths and allowlisted origins are kept as given."""
    assert safe_return_to(target, allowed_origins=ORIGINS, fallback="/") == target
