"""The [mfa] settings: RP ID and origins from configuration only, checked at load (WA-02)."""

from __future__ import annotations

from typing import Any

import pytest

from sekisho.config import validate_settings
from sekisho.errors import ConfigError


def _load(mfa: dict[str, Any], origins: list[str] | None = None) -> Any:
    data: dict[str, Any] = {"mfa": mfa}
    if origins is not None:
        data["server"] = {"public_origins": origins}
    return validate_settings(data)


@pytest.mark.parametrize(("mfa", "origins", "expected"), [
    ({}, ["https://gw.corp.example", "https://gw2.corp.example"],
     ("gw.corp.example", ("https://gw.corp.example",))),
    ({}, ["http://127.0.0.1:8080", "http://localhost:8080"],
     ("localhost", ("http://localhost:8080",))),
    ({"rp_id": "corp.example"}, ["https://gw.corp.example", "https://gw2.corp.example",
                                 "https://other.example", "http://10.0.0.1"],
     ("corp.example", ("https://gw.corp.example", "https://gw2.corp.example"))),
    ({"origins": ["https://a.corp.example"]}, ["https://gw.other.example"],
     ("a.corp.example", ("https://a.corp.example",))),
])
def test_defaults_come_from_the_public_origins_WA_02(
    mfa: dict[str, Any], origins: list[str], expected: tuple[str, tuple[str, ...]]
) -> None:
    settings = _load(mfa, origins)
    assert settings.mfa.relying_party(settings.server.public_origins) == expected
    assert settings.mfa.challenge_ttl == 300 and settings.mfa.recovery_codes == 10


def test_parent_domain_rp_id_WA_02() -> None:
    settings = _load({"rp_id": "Corp.Example"},
                     ["https://gw.corp.example", "https://corp.example:8443"])
    assert settings.mfa.relying_party(settings.server.public_origins)[0] == "corp.example"


@pytest.mark.parametrize(("mfa", "origins", "message"), [
    ({"rp_id": "evil.example"}, ["https://gw.corp.example"], "mfa.rp_id: no origin"),
    ({"rp_id": "example"}, ["https://gw.example"], "mfa.rp_id"),
    ({"rp_id": "orp.example"}, ["https://gw.corp.example"], "mfa.rp_id"),
    ({"rp_id": "https://corp.example"}, None, "mfa.rp_id: must be a domain name"),
    ({"rp_id": "corp.example:443"}, None, "mfa.rp_id"),
    ({"origins": ["ftp://corp.example"]}, None, "mfa.origins"),
    ({"origins": ["https://corp.example/login"]}, None, "mfa.origins"),
    ({"rp_id": "corp.example", "origins": ["https://evil.example"]}, None, "mfa: rp_id"),
    ({"challenge_ttl": 5}, None, "mfa.challenge_ttl"),
    ({"issuer": "A:B"}, None, "mfa.issuer"),
    ({"required_groups": ["a,b"]}, None, "mfa.required_groups"),
    ({"unknown": 1}, None, "mfa.unknown: unknown key"),
])
def test_bad_settings_name_the_key(mfa: dict[str, Any], origins: list[str] | None,
                                   message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(mfa, origins)
    assert message in str(caught.value)


def test_ip_origin_demo_still_loads() -> None:
    settings = _load({})  # http://127.0.0.1:8080, the plain-http demo default
    assert settings.mfa.relying_party(settings.server.public_origins)[0] == "127.0.0.1"
