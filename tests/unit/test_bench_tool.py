"""Tests for bench.py's pure helpers (wrk output parsing, ratios, targets) on canned text; no
server is started and no speed is asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtests import bench  # noqa: E402

WRK_CLOSE = """\
Running 1s test @ http://127.0.0.1:51513/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.50ms    1.71ms  19.02ms   87.82%
    Req/Sec     8.33k     1.33k   10.48k    70.00%
  Latency Distribution
     50%    0.91ms
     75%    1.87ms
     90%    3.50ms
     99%    8.48ms
  16688 requests in 1.01s, 4.82MB read
  Socket errors: connect 0, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:  16492.50
Transfer/sec:      4.77MB
"""

WRK_KEEPALIVE = """\
Running 1s test @ http://127.0.0.1:51513/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   137.28us  319.53us   4.62ms   97.09%
    Req/Sec    41.08k     1.46k   43.29k    63.64%
  Latency Distribution
     50%   94.00us
     75%  119.00us
     90%  150.00us
     99%    1.99ms
  44903 requests in 1.10s, 13.19MB read
Requests/sec:  40844.82
Transfer/sec:     12.00MB
"""


def test_parse_wrk_with_errors() -> None:
    result = bench.parse_wrk(WRK_CLOSE)
    assert result.requests == 16688
    assert result.seconds == pytest.approx(1.01)
    assert result.rps == pytest.approx(16492.50)
    assert result.p50_ms == pytest.approx(0.91)
    assert result.p99_ms == pytest.approx(8.48)
    assert result.socket_errors == {"connect": 0, "read": 12, "write": 0, "timeout": 3}
    assert result.non_2xx == 5
    assert result.errors == 20


def test_parse_wrk_microseconds_and_no_errors() -> None:
    result = bench.parse_wrk(WRK_KEEPALIVE)
    assert result.p50_ms == pytest.approx(0.094)
    assert result.p75_ms == pytest.approx(0.119)
    assert result.p99_ms == pytest.approx(1.99)
    assert result.errors == 0


def test_parse_wrk_without_totals_is_an_error() -> None:
    with pytest.raises(ValueError):
        bench.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(("text", "ms"), [("94.00us", 0.094), ("1.07ms", 1.07),
                                          ("2.00s", 2000.0), ("1.50m", 90_000.0)])
def test_parse_wrk_time(text: str, ms: float) -> None:
    assert bench.parse_wrk_time(text) == pytest.approx(ms)


def test_ratio_and_median() -> None:
    assert bench.ratio(10.0, 4.0) == 2.5
    assert bench.ratio(None, 4.0) is None
    assert bench.ratio(1.0, 0.0) is None
    assert bench.median([3.0, None, 1.0, 2.0]) == 2.0
    assert bench.median([None]) is None
    assert bench.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert bench.percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    assert bench.cpu_us_per_request(0.5, 10_000) == pytest.approx(50.0)
    assert bench.cpu_us_per_request(0.5, 0) is None


def _row(scenario: str, server: str, rps: float, cpu_seconds: float, p50_ms: float = 1.0,
         requests: int = 10_000) -> bench.Row:
    row = bench.Row(scenario, server)
    wrk = bench.WrkResult(requests=requests, seconds=1.0, rps=rps, p50_ms=p50_ms, p99_ms=5.0)
    row.add_round(wrk, cpu_seconds)
    return row


def test_row_aggregates_rounds_and_ratios() -> None:
    forkhttpd = bench.Row("close", "forkhttpd-close")
    for rps in (900.0, 1100.0, 1000.0):
        forkhttpd.add_round(bench.WrkResult(requests=1000, rps=rps, p50_ms=1.0), 0.02)
    assert forkhttpd.rps == 1000.0
    assert forkhttpd.requests == 3000
    assert forkhttpd.cpu_us == pytest.approx(20.0)
    rows = [forkhttpd, _row("close", "gunicorn", 500.0, 1.0), _row("close", "nginx", 2000.0, 0.1)]
    ratios = bench.row_ratios(rows, forkhttpd)
    assert ratios["rps_vs_gunicorn"] == pytest.approx(2.0)
    assert ratios["rps_vs_nginx"] == pytest.approx(0.5)
    assert ratios["cpu_vs_gunicorn"] == pytest.approx(0.2)
    assert ratios["cpu_vs_nginx"] == pytest.approx(2.0)
    table = bench.format_table(rows)
    assert "forkhttpd-close" in table and "gunicorn" in table


def test_targets_pass_miss_and_flags() -> None:
    rows = [
        _row("close", "forkhttpd-close", 2100.0, 0.1),   # 10 us/req
        _row("close", "gunicorn", 1000.0, 1.0),          # 100 us/req: ratio 0.1 -> PASS
        _row("close", "nginx", 2000.0, 0.05),
        _row("keepalive", "forkhttpd", 5000.0, 0.2, p50_ms=41.0),  # 20 us/req, slow p50
        _row("keepalive", "forkhttpd-1w", 3000.0, 0.2),
        _row("keepalive", "gunicorn", 1000.0, 1.0),      # ratio 0.2 -> MISS (needs 1/8)
        _row("keepalive", "nginx", 10000.0, 0.05),
    ]
    probes = {"forkhttpd": {"attempts": 80, "failures": 0, "p99_ms": 12.0,
                            "idle_keepalive_p50_ms": 40.5}}
    memory = {"forkhttpd": {"max_rss_mib": 14.0}, "forkhttpd-close": {"max_rss_mib": 16.5}}
    verdicts = {t.name: t.verdict for t in bench.evaluate_targets(rows, probes, memory)}
    assert verdicts["CPU/request, closing each connection <= 1/5 of gunicorn's"] == "PASS"
    assert verdicts["CPU/request, keep-alive <= 1/8 of gunicorn's"] == "MISS"
    assert verdicts["req/s closing each connection >= nginx's"] == "PASS"
    assert verdicts["keep-alive req/s >= 0.35x nginx while fresh connections get p99 < 50 ms"] \
        == "PASS"
    assert verdicts["1 MiB static req/s >= 0.9x nginx's"] == "SKIP"
    assert verdicts["idle worker RSS <= 15 MiB"] == "MISS"  # the largest forkhttpd worker
    assert verdicts["scaling, 2 workers vs 1 (keep-alive req/s)"] == "INFO"
    flags = [name for name, verdict in verdicts.items() if verdict == "FLAG"]
    assert any("keep-alive p50 41.0 ms" in name for name in flags)
    assert any("idle keep-alive p50 40.5 ms" in name for name in flags)


def test_only_accepts_scenarios_and_servers() -> None:
    assert bench.parse_only("close, nginx") == ({"close"}, {"nginx"})
    assert bench.parse_only("forkhttpd-1w") == (set(), {"forkhttpd-1w"})
    assert bench.parse_only(None) == (set(), set())
    with pytest.raises(SystemExit):
        bench.parse_only("apache")
