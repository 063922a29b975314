"""The admin chart SVG and the admin filter rules (AD-01)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from sekisho.gateway.portal.admin_chart import nice_max, render_chart, tick_label
from sekisho.gateway.portal.admin_query import (
    FilterError,
    chart_range,
    parse_filters,
)
from sekisho.store.lockout_records import IntervalCount

START = datetime(2025, 11, 1, tzinfo=UTC)
LABELS = {"title": "Failures <&> lockouts", "failed": "失敗", "refused": "拒否",
          "lockouts": "ロックアウト", "attempts": "サインイン試行", "time": "時刻（UTC）"}
SVG = "{http://www.w3.org/2000/svg}"


def series(values: list[tuple[int, int, int]]) -> list[IntervalCount]:
    return [IntervalCount(START + timedelta(hours=i), f, r, n)
            for i, (f, r, n) in enumerate(values)]


def test_chart_carries_every_value_and_escapes_labels() -> None:
    """Every bucket's numbers are in the SVG (data attributes and hover text); labels are
    escaped; the document is well-formed XML."""
    data = series([(0, 0, 0), (12, 3, 1), (40, 0, 2), (7, 7, 0)])
    svg = str(render_chart(data, bucket_seconds=3600, labels=LABELS))
    root = ET.fromstring(svg)  # well-formed, or this raises
    assert root.tag == f"{SVG}svg"
    buckets = root.findall(f"{SVG}g")
    assert [(b.get("data-failures"), b.get("data-refused"), b.get("data-lockouts"))
            for b in buckets] == [("0", "0", "0"), ("12", "3", "1"), ("40", "0", "2"),
                                  ("7", "7", "0")]
    hover = buckets[1].find(f"{SVG}title")
    assert hover is not None and hover.text == (
        "2025-11-01 01:00 UTC — 失敗: 12, 拒否: 3, ロックアウト: 1")
    assert "Failures &lt;&amp;&gt; lockouts" in svg
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"時刻（UTC）", "サインイン試行", "ロックアウト", "00:00"} <= set(texts)
    assert "50" in texts and "2" in texts  # the two count axes' tops
    # Stacked: the refused bar sits on top of the failed one, same column.
    rects = buckets[1].findall(f"{SVG}rect")
    failed = next(r for r in rects if r.get("class") == "failed")
    refused = next(r for r in rects if r.get("class") == "refused")
    assert failed.get("x") == refused.get("x")
    assert float(refused.get("y", 0)) + float(refused.get("height", 0)) == pytest.approx(
        float(failed.get("y", 0)), abs=0.11)


def test_empty_series_still_draws_axes() -> None:
    svg = str(render_chart([], bucket_seconds=3600, labels=LABELS))
    assert "<g class=\"bucket\"" not in svg and 'class="axis"' in svg


@pytest.mark.parametrize(("value", "top"), [(0, 1), (1, 1), (3, 5), (10, 10), (11, 20),
                                            (42, 50), (999, 1000), (5001, 10000)])
def test_nice_max(value: int, top: int) -> None:
    assert nice_max(value) == top


def test_tick_labels() -> None:
    when = datetime(2025, 11, 3, 18, tzinfo=UTC)
    assert tick_label(when, 3600) == "18:00"
    assert tick_label(when, 6 * 3600) == "11-03 18:00"
    assert tick_label(when, 86400) == "11-03"


def test_chart_ranges_end_with_the_current_bucket() -> None:
    now = datetime(2025, 11, 3, 18, 25, tzinfo=UTC)
    assert chart_range(None, now=now) == (
        "24h", datetime(2025, 11, 2, 19, tzinfo=UTC), datetime(2025, 11, 3, 19, tzinfo=UTC),
        3600)
    _, since, until, bucket = chart_range("30d", now=now)
    assert (until - since) / timedelta(seconds=bucket) == 30 and until.hour == 0
    with pytest.raises(FilterError, match=r"^chart: "):
        chart_range("1y", now=now)


@pytest.mark.parametrize(("params", "named"), [
    ({"hours": "0"}, "hours"), ({"hours": "nan"}, "hours"), ({"hours": "abc"}, "hours"),
    ({"since": "2025-13-01"}, "since"), ({"ip": "300.1.1.1"}, "ip"),
    ({"state": "ACTIVE"}, "state"), ({"account": "a\x00b"}, "account"),
    ({"account": "x" * 300}, "account"),
    ({"since": "2025-11-02T00:00", "until": "2025-11-01T00:00"}, "until"),
    ({"hours": "2", "since": "2025-11-01T00:00"}, "hours"),
])
def test_bad_filters_name_the_parameter(params: dict[str, str], named: str) -> None:
    with pytest.raises(FilterError) as bad:
        parse_filters(params)
    assert bad.value.param == named and str(bad.value).startswith(f"{named}: ")


def test_filters_round_trip() -> None:
    filters = parse_filters({"since": "2025-11-01T09:00", "until": "2025-11-02T09:00+09:00",
                             "account": " Alice ", "ip": "203.0.113.9/24", "state": "active",
                             "hours": ""})
    assert filters.since == datetime(2025, 11, 1, 9, tzinfo=UTC)
    assert filters.until == datetime(2025, 11, 2, 0, tzinfo=UTC)
    assert filters.ip == "203.0.113.0/24" and filters.account == "Alice"
    assert parse_filters(filters.params()) == filters
    assert re.fullmatch(r"\d+(\.\d+)?", parse_filters({"hours": "1.5"}).params()["hours"])
