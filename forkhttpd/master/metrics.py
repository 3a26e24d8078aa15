"""The master's counters (worker exits by reason, reloads by result, the counts of workers that
are gone) and the renderings of a status snapshot: Prometheus text exposition, the status
table, the one-line summary; pure data, no I/O: must not import arbiter, worker, serve,
supervision or socket."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from ..runtime.scoreboard import (
    BUCKET0,
    BUCKETS,
    BYTES,
    CLASS0,
    CONNECTIONS,
    COUNTERS,
    DURATION_SUM,
    REQUESTS,
)
from ..runtime.scoreboard import STATES as _STATES

__all__ = ["EXIT_REASONS", "STATUS_CLASSES", "Tally", "render_metrics", "render_table", "summary",
           "totals"]

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: reasons always present in forkhttpd_worker_restarts_total (others appear when they happen)
EXIT_REASONS = ("timeout", "rss", "max-requests", "lifetime", "reload", "shutdown", "ttou",
                "crash", "exit", "master-gone", "app-error")
WORKER_STATES = tuple(state for state in _STATES if state != "free")


class Tally:
    """What the master counts itself; survives its workers (counters stay monotonic)."""

    def __init__(self) -> None:
        self.exits: dict[str, int] = {}
        self.reloads = {"ok": 0, "failed": 0}
        self.retired = [0] * COUNTERS  # the counters of workers that have exited
        self.recent: deque[dict[str, Any]] = deque(maxlen=10)

    def worker_exited(self, number: int, pid: int, generation: int, reason: str, how: str,
                      counters: tuple[int, ...], wall: float) -> None:
        self.exits[reason] = self.exits.get(reason, 0) + 1
        retired = self.retired
        for index, value in enumerate(counters):
            if index != CONNECTIONS:
                retired[index] += value
        self.recent.append({"time": wall, "worker": number, "pid": pid,
                            "generation": generation, "reason": reason, "how": how,
                            "requests": counters[REQUESTS]})

    def reloaded(self, ok: bool) -> None:
        self.reloads["ok" if ok else "failed"] += 1


def totals(counters: list[int]) -> dict[str, Any]:
    """The "requests" part of a snapshot, from summed counter blocks."""
    buckets = counters[BUCKET0:]
    return {
        "total": counters[REQUESTS],
        "bytes_sent": counters[BYTES],
        "by_class": {name: counters[CLASS0 + i] for i, name in enumerate(STATUS_CLASSES)},
        "duration": {"sum_us": counters[DURATION_SUM],
                     "buckets_us": [[bound, count] for bound, count in
                                    zip((*BUCKETS, None), buckets, strict=True)]},
    }


def _label(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: object) -> None:
        if labels:
            inner = ",".join(f'{key}="{_label(val)}"' for key, val in labels.items())
            self.lines.append(f"{name}{{{inner}}} {_number(value)}")
        else:
            self.lines.append(f"{name} {_number(value)}")


def render_metrics(snapshot: dict[str, Any]) -> str:
    """Prometheus text exposition format 0.0.4 of a status snapshot (see status.collect)."""
    out = _Exposition()
    requests = snapshot["requests"]
    out.family("forkhttpd_requests_total", "counter", "Responses sent, by status class.")
    for name, count in requests["by_class"].items():
        out.sample("forkhttpd_requests_total", count, status_class=name)
    out.family("forkhttpd_response_bytes_total", "counter",
               "Bytes sent in responses (heads and bodies).")
    out.sample("forkhttpd_response_bytes_total", requests["bytes_sent"])
    name = "forkhttpd_request_duration_seconds"
    out.family(name, "histogram", "Time from a complete request head to the end of its "
                                  "response.")
    cumulative = 0
    for bound, count in requests["duration"]["buckets_us"]:
        cumulative += count
        out.sample(f"{name}_bucket", cumulative,
                   le="+Inf" if bound is None else repr(bound / 1e6))
    out.sample(f"{name}_sum", requests["duration"]["sum_us"] / 1e6)
    out.sample(f"{name}_count", cumulative)

    out.family("forkhttpd_workers", "gauge", "Worker processes, by state.")
    for state in WORKER_STATES:
        out.sample("forkhttpd_workers", snapshot["states"].get(state, 0), state=state)
    out.family("forkhttpd_worker_restarts_total", "counter",
               "Worker processes that exited, by reason (replaced unless stopping).")
    exits = snapshot["exits"]
    for reason in (*EXIT_REASONS, *sorted(set(exits) - set(EXIT_REASONS))):
        out.sample("forkhttpd_worker_restarts_total", exits.get(reason, 0), reason=reason)
    out.family("forkhttpd_worker_rss_bytes", "gauge", "Resident memory of each worker.")
    workers = [w for w in snapshot["workers"] if w["pid"]]
    for worker in workers:
        if worker["rss_bytes"] is not None:
            out.sample("forkhttpd_worker_rss_bytes", worker["rss_bytes"],
                       worker=worker["number"], pid=worker["pid"])
    out.family("forkhttpd_worker_cpu_seconds_total", "counter", "CPU time used by each worker.")
    for worker in workers:
        if worker["cpu_seconds"] is not None:
            out.sample("forkhttpd_worker_cpu_seconds_total", worker["cpu_seconds"],
                       worker=worker["number"], pid=worker["pid"])
    out.family("forkhttpd_reloads_total", "counter", "Reloads (SIGHUP), by result.")
    for result, count in snapshot["reloads"].items():
        out.sample("forkhttpd_reloads_total", count, result=result)

    master = snapshot["master"]
    out.family("forkhttpd_generation", "gauge", "The code generation now serving.")
    out.sample("forkhttpd_generation", master["generation"])
    out.family("forkhttpd_workers_wanted", "gauge", "The number of workers the master keeps.")
    out.sample("forkhttpd_workers_wanted", master["workers_wanted"])
    out.family("forkhttpd_master_start_time_seconds", "gauge",
               "When the master started, in seconds since the epoch.")
    out.sample("forkhttpd_master_start_time_seconds", round(master["started"], 3))
    listeners = [item for item in snapshot["listeners"] if item["queued"] is not None]
    if listeners:
        out.family("forkhttpd_listen_queue", "gauge",
                   "Connections waiting in a listening socket's accept queue.")
        for item in listeners:
            out.sample("forkhttpd_listen_queue", item["queued"], listener=item["address"])
        out.family("forkhttpd_listen_backlog", "gauge", "The accept queue's maximum length.")
        for item in listeners:
            out.sample("forkhttpd_listen_backlog", item["backlog"], listener=item["address"])
    return "\n".join(out.lines) + "\n"


def summary(snapshot: dict[str, Any]) -> str:
    """One line for systemd's STATUS= (and the master's log): busy/idle, req/s, generation."""
    states = snapshot["states"]
    busy = states.get("handling", 0) + states.get("reading", 0)
    idle = states.get("idle", 0) + states.get("keep-alive", 0)
    master = snapshot["master"]
    total = sum(count for state, count in states.items() if state != "exiting")
    line = (f"{total} workers ({busy} busy, {idle} idle); "
            f"{snapshot['requests_per_second']:.1f} req/s; generation {master['generation']}")
    if master["last_reload"] not in ("", "none"):
        line += f"; last reload: {master['last_reload']}"
    return line[:200]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _size(count: float | None) -> str:
    if count is None:
        return "-"
    for unit in ("", "K", "M", "G"):
        if count < 1024:
            return f"{count:.0f}{unit}" if unit == "" else f"{count:.1f}{unit}"
        count /= 1024
    return f"{count:.1f}T"


def render_table(snapshot: dict[str, Any]) -> str:
    """The snapshot for people: the master, then one row per worker."""
    master = snapshot["master"]
    requests = snapshot["requests"]
    lines = [f"forkhttpd master pid {master['pid']}: up {_age(master['uptime'])}, generation "
             f"{master['generation']}, {master['workers_wanted']} workers wanted, last reload: "
             f"{master['last_reload']}" + (f", stopping ({master['stopping']})"
                                           if master["stopping"] else "")]
    lines.append(f"  app: {master['app']}" + (f"   status: http://{master['status_address']}/"
                                              if master["status_address"] else ""))
    for item in snapshot["listeners"]:
        queue = (f" (accept queue {item['queued']} of {item['backlog']})"
                 if item["queued"] is not None else "")
        lines.append(f"  listening on {item['address']}{queue}")
    classes = ", ".join(f"{k} {v}" for k, v in requests["by_class"].items() if v)
    lines.append(f"  requests: {requests['total']}" + (f" ({classes})" if classes else "")
                 + f", {snapshot['requests_per_second']:.1f} req/s, "
                   f"{_size(requests['bytes_sent'])}B sent")
    exits = ", ".join(f"{k} {v}" for k, v in sorted(snapshot["exits"].items()))
    lines.append(f"  worker exits: {exits or 'none'}")
    for item in snapshot["recent_exits"][-3:]:
        lines.append(f"    {time.strftime('%H:%M:%S', time.localtime(item['time']))} worker "
                     f"{item['worker']} (pid {item['pid']}): {item['reason']}, {item['how']}")
    if "age" in snapshot:
        lines.append(f"  (as of {snapshot['age']:.1f}s ago"
                     + ("; the master has stopped updating it!)" if snapshot["age"] > 5
                        else ")"))
    lines.append("")
    lines.append(f"{'WORKER':>6} {'PID':>7} {'GEN':>3} {'STATE':<10} {'REQS':>8} {'SENT':>7} "
                 f"{'RSS':>7} {'CPU':>8} {'CPU%':>5} {'BEAT':>6}  REQUEST")
    for w in snapshot["workers"]:
        request = ""
        if w["request"] is not None:
            request = f"{w['request']!r} for {_age(w['request_seconds'])}"
        note = f" [{w['retiring'] or w['replacing']}]" if w["retiring"] or w["replacing"] else ""
        cpu = f"{w['cpu_seconds']:.2f}s" if w["cpu_seconds"] is not None else "-"
        percent = f"{w['cpu_percent']:.0f}" if w["cpu_percent"] is not None else "-"
        lines.append(f"{w['number']:>6} {w['pid'] or '-':>7} {w['generation']:>3} "
                     f"{w['state']:<10} {w['requests']:>8} {_size(w['bytes_sent']):>7} "
                     f"{_size(w['rss_bytes']):>7} {cpu:>8} {percent:>5} "
                     f"{_age(w['last_beat_age']):>6}  {request}{note}")
    return "\n".join(lines) + "\n"
