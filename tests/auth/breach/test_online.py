"""The range API client against a local fake that answers like HIBP (PW-10, PW-11)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from tests.auth.breach.fake_range import FakeRange, running_fake_range, sha1

from sekisho.auth.breach.online import RangeClient, RangeUnavailable, parse_range

LISTED = "P@ssw0rd"  # the HIBP blog's example


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeRange]:
    with running_fake_range() as server:
        server.add(LISTED, 52_579)
        yield server


@pytest.fixture
async def client(fake: FakeRange) -> AsyncIterator[RangeClient]:
    c = RangeClient(fake.base, timeout=2.0, cache_size=100, cache_ttl=60)
    await c.start()
    try:
        yield c
    finally:
        await c.close()


async def test_listed_password_is_found_and_only_the_prefix_leaves(
    fake: FakeRange, client: RangeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """PW-10: k-anonymity (5 hex digits out), Add-Padding: true on every request."""
    caplog.set_level(logging.DEBUG)
    assert await client.lookup_password(LISTED) == 52_579
    digest = sha1(LISTED)
    assert fake.paths() == [f"/range/{digest[:5]}"]
    path, headers = fake.requests[0]
    assert headers["Add-Padding"] == "true"
    sent = path + " ".join(f"{k}: {v}" for k, v in headers.items())
    assert digest[5:] not in sent and LISTED not in sent
    assert digest not in caplog.text and digest[5:] not in caplog.text


async def test_padding_lines_with_count_zero_are_ignored(
    fake: FakeRange, client: RangeClient
) -> None:
    """PW-10: a suffix answered with count 0 is padding, not a breach."""
    fake.pad("correct horse battery staple")
    assert await client.lookup_password("correct horse battery staple") is None
    assert len(fake.requests) == 1


async def test_suffix_compare_is_case_insensitive(fake: FakeRange, client: RangeClient) -> None:
    """PW-10: a mirror answering lower-case suffixes still matches."""
    fake.lowercase = True
    assert await client.lookup_password(LISTED) == 52_579


def test_parse_range_reads_crlf_and_drops_padding() -> None:
    text = "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0\r\n"
    assert parse_range(text) == {"0018A45C4D1DEF81644B54AB7F969B88D65": 1}
    with pytest.raises(RangeUnavailable, match="line 2"):
        parse_range("0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n<html>captive portal</html>")


async def test_cache_hit_sends_no_second_request(fake: FakeRange, client: RangeClient) -> None:
    assert await client.lookup_password(LISTED) == 52_579
    assert await client.lookup_password(LISTED) == 52_579
    # Another password with the same prefix is answered from the same cached range.
    assert await client.lookup_hex(sha1(LISTED)[:5] + "0" * 35) is None
    assert len(fake.requests) == 1
    assert client.requests == 1


async def test_cache_entries_expire_and_the_cache_is_bounded(fake: FakeRange) -> None:
    clock = Clock()
    client = RangeClient(fake.base, cache_size=2, cache_ttl=60, clock=clock)
    await client.start()
    try:
        await client.lookup_password(LISTED)
        clock.now += 61
        await client.lookup_password(LISTED)
        assert len(fake.requests) == 2
        for prefix in ("00000", "11111", "22222"):
            await client.range(prefix)
        assert client.cached == 2
    finally:
        await client.close()


async def test_concurrent_lookups_of_one_prefix_share_one_request(
    fake: FakeRange, client: RangeClient
) -> None:
    fake.delay = 0.2
    counts = await asyncio.gather(*(client.lookup_password(LISTED) for _ in range(20)))
    assert counts == [52_579] * 20
    assert len(fake.requests) == 1


async def test_slow_answer_times_out(fake: FakeRange) -> None:
    """PW-11: the call is bounded by its timeout."""
    fake.delay = 2.0
    client = RangeClient(fake.base, timeout=0.1)
    await client.start()
    try:
        with pytest.raises(RangeUnavailable, match=r"did not answer within 0\.1 s"):
            await client.lookup_password(LISTED)
    finally:
        await client.close()


@pytest.mark.parametrize(("status", "body", "match"), [
    (503, None, "HTTP 503"),
    (None, b"<html>login to the Wi-Fi</html>", "malformed"),
    (None, b"\xff\xfe", "malformed"),
])
async def test_bad_answers_are_unavailable_not_clean(
    fake: FakeRange, client: RangeClient, status: int | None, body: bytes | None, match: str
) -> None:
    fake.status, fake.body = status, body
    with pytest.raises(RangeUnavailable, match=match) as info:
        await client.lookup_password(LISTED)
    assert sha1(LISTED)[:5] not in str(info.value)
    fake.status = fake.body = None
    assert await client.lookup_password(LISTED) == 52_579  # failures are not cached


async def test_fake_answers_400_on_a_bad_prefix_and_the_client_reports_it(
    fake: FakeRange, client: RangeClient
) -> None:
    with pytest.raises(RangeUnavailable, match="HTTP 400"):
        await client.range("XYZ12")
    with pytest.raises(ValueError, match="40-digit"):
        await client.lookup_hex("XYZ12" + "0" * 35)


async def test_unreachable_service_is_unavailable() -> None:
    from tests.integration.servers import free_port

    client = RangeClient(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(RangeUnavailable, match="unreachable"):
        await client.lookup_password(LISTED)


async def test_mirror_url_with_a_path(fake: FakeRange) -> None:
    """PW-11: a self-hosted mirror at another base URL."""
    client = RangeClient(fake.base + "/mirror/", timeout=2.0)
    await client.start()
    try:
        assert await client.lookup_password(LISTED) == 52_579
    finally:
        await client.close()
    assert fake.paths() == [f"/mirror/range/{sha1(LISTED)[:5]}"]


async def test_without_start_each_lookup_uses_its_own_session(fake: FakeRange) -> None:
    """The CLI path: no lifespan, nothing left open (unclosed sessions fail the test run)."""
    client = RangeClient(fake.base, cache_size=0)
    assert await client.lookup_password(LISTED) == 52_579
    assert await client.lookup_password("never listed anywhere 8c1f") is None
    assert len(fake.requests) == 2
