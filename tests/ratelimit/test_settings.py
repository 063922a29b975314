"""The [ratelimit] settings: defaults, window syntax, messages that name the key."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from sekisho.config.ratelimit import Window
from sekisho.ratelimit import RateLimitSettings


class _Root(BaseModel):
    ratelimit: RateLimitSettings


def _problems(data: dict[str, object]) -> list[str]:
    """Messages as the config loader words them: dotted key, then the rule."""
    with pytest.raises(ValidationError) as info:
        _Root.model_validate({"ratelimit": data})
    return [
        ".".join(str(p) for p in err["loc"]) + ": " + err["msg"].removeprefix("Value error, ")
        for err in info.value.errors()
    ]


def test_defaults() -> None:
    s = RateLimitSettings()
    assert (s.free_failures, s.first_delay, s.max_delay, s.disable_after) == (4, 30, 3600, 50)
    assert s.ip.short == Window(count=20, seconds=600)
    assert s.subnet.short == Window(count=60, seconds=600)
    assert s.account.passkey_options.short == Window(count=20, seconds=60)
    assert set(s.budgets()) == {
        "account_ip", "ip", "subnet", "global_failures", "account.password", "account.totp",
        "account.recovery", "account.passkey_options", "attack.ip", "attack.subnet"}


def test_delay_schedule_rl02() -> None:
    """RL-02: none for failures 1-4, then 30 s doubling, capped at one hour."""
    s = RateLimitSettings()
    assert [s.delay_after(n) for n in range(1, 15)] == [
        0, 0, 0, 0, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert s.delay_after(10_000) == 3600


@pytest.mark.parametrize(
    ("text", "count", "seconds"),
    [("20/10 minutes", 20, 600), ("5 per minute", 5, 60), ("100/day", 100, 86400)],
)
def test_window_accepts_limits_strings(text: str, count: int, seconds: int) -> None:
    s = RateLimitSettings.model_validate({"ip": {"short": text, "long": "1000/31 days"}})
    assert s.ip.short == Window(count=count, seconds=seconds)


def test_window_accepts_count_and_seconds() -> None:
    s = RateLimitSettings.model_validate(
        {"ip": {"short": {"count": 3, "seconds": 7}, "long": {"count": 9, "seconds": 70}}})
    assert s.ip.windows == (Window(count=3, seconds=7), Window(count=9, seconds=70))


def test_disable_after_at_most_100_rl01() -> None:
    """RL-01: the hard limit is configurable, at most 100."""
    assert _problems({"disable_after": 101}) == ["ratelimit.disable_after: must be <= 100"]
    assert RateLimitSettings(disable_after=100).disable_after == 100


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"ip": {"short": "lots", "long": "1/day"}},
         'ratelimit.ip.short: must be like "20/10 minutes" or {count = 20, seconds = 600}'),
        ({"subnet": {"short": "1/minute;5/hour", "long": "9/day"}},
         "ratelimit.subnet.short: must be one window; give the other one as `long`"),
        ({"account_ip": {"short": "5/day", "long": "9/hour"}},
         "ratelimit.account_ip: long must be a longer window than short"),
        ({"account": {"totp": {"short": "0/minute", "long": "9/hour"}}},
         "ratelimit.account.totp.short.count: Input should be greater than or equal to 1"),
        ({"ip": {"short": "1/minute", "long": "9/hour", "enforce": True}},
         "ratelimit.ip.enforce: Extra inputs are not permitted"),
        ({"first_delay": 60, "max_delay": 30},
         "ratelimit: max_delay must be >= first_delay"),
        ({"free_failures": 10, "disable_after": 10},
         "ratelimit: disable_after must be greater than free_failures"),
        ({"disable_after": 0}, "ratelimit.disable_after: must be >= 1"),
    ],
)
def test_messages_name_the_key(data: dict[str, object], problem: str) -> None:
    assert _problems(data) == [problem]


def test_frozen() -> None:
    s = RateLimitSettings()
    with pytest.raises(ValidationError):
        s.disable_after = 10  # type: ignore[misc]
