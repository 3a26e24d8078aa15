"""The Prometheus text exposition (format 0.0.4) of a status snapshot (see snapshot.collect):
pure data, no I/O; must not import arbiter, supervise, worker or socket."""

from __future__ import annotations

from typing import Any

from ..runtime.scoreboard import STATES as _STATES

__all__ = ["EXITS_NOT_RESTARTS", "RESTART_REASONS", "render_metrics"]

#: reasons always present in forkhttpd_worker_restarts_total (others appear when they happen)
RESTART_REASONS = ("timeout", "rss", "max-requests", "lifetime", "reload", "crash", "exit",
                   "master-gone", "app-error")
#: exits after which the master starts no successor: not restarts (worker_exits_total only)
EXITS_NOT_RESTARTS = ("shutdown", "ttou")
WORKER_STATES = tuple(state for state in _STATES if state != "free")


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
    """Prometheus text exposition format 0.0.4 of a status snapshot (see snapshot.collect)."""
    out = _Exposition()
    requests = snapshot["requests"]
    out.family("forkhttpd_requests_total", "counter",
               "Responses sent (protocol refusals included), by status class.")
    for name, count in requests["by_class"].items():
        out.sample("forkhttpd_requests_total", count, status_class=name)
    out.family("forkhttpd_responses_total", "counter",
               "Responses sent (protocol refusals included), by status code.")
    for code, count in requests.get("by_code", {}).items():
        out.sample("forkhttpd_responses_total", count, code=code)
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
    exits = snapshot["exits"]
    out.family("forkhttpd_worker_restarts_total", "counter",
               "Workers that exited and were replaced, by reason (stops and TTOU excluded).")
    for reason in (*RESTART_REASONS,
                   *sorted(set(exits) - set(RESTART_REASONS) - set(EXITS_NOT_RESTARTS))):
        out.sample("forkhttpd_worker_restarts_total", exits.get(reason, 0), reason=reason)
    out.family("forkhttpd_worker_exits_total", "counter",
               "Worker processes that exited, by reason (restarts, stops and TTOU).")
    for reason in (*RESTART_REASONS, *EXITS_NOT_RESTARTS,
                   *sorted(set(exits) - set(RESTART_REASONS) - set(EXITS_NOT_RESTARTS))):
        out.sample("forkhttpd_worker_exits_total", exits.get(reason, 0), reason=reason)
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
    out.family("forkhttpd_build_info", "gauge",
               "Always 1; the labels say which forkhttpd and Python the master runs.")
    out.sample("forkhttpd_build_info", 1, version=master.get("forkhttpd_version", ""),
               python=master.get("python_version", ""))
    out.family("forkhttpd_generation", "gauge", "The code generation now serving.")
    out.sample("forkhttpd_generation", master["generation"])
    out.family("forkhttpd_workers_wanted", "gauge", "The number of workers the master keeps.")
    out.sample("forkhttpd_workers_wanted", master["workers_wanted"])
    out.family("forkhttpd_master_start_time_seconds", "gauge",
               "When the master started, in seconds since the epoch.")
    out.sample("forkhttpd_master_start_time_seconds", round(master["started"], 3))
    _process_metrics(out, master)
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


def _process_metrics(out: _Exposition, master: dict[str, Any]) -> None:
    """The master process's own figures under the names every Prometheus client library
    uses (process_*), so that standard dashboards and alerts work unchanged."""
    process = master.get("process") or {}
    for name, kind, help_text, value in (
            ("process_cpu_seconds_total", "counter",
             "User and system CPU time of the master, in seconds.", process.get("cpu_seconds")),
            ("process_resident_memory_bytes", "gauge", "Resident memory of the master.",
             process.get("rss_bytes")),
            ("process_virtual_memory_bytes", "gauge", "Virtual memory of the master.",
             process.get("virtual_bytes")),
            ("process_open_fds", "gauge", "Open file descriptors of the master.",
             process.get("open_fds")),
            ("process_max_fds", "gauge", "The master's limit on open file descriptors.",
             process.get("max_fds")),
            ("process_start_time_seconds", "gauge",
             "When the master started, in seconds since the epoch.", master["started"])):
        if value is not None:
            out.family(name, kind, help_text)
            out.sample(name, value)


