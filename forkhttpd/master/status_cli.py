"""`forkhttpd status` for people and programs: a status snapshot as a table or JSON, once or
every N seconds (--watch) until Ctrl-C; pure rendering plus stdout, run by ops.control in a
short-lived process: must not import arbiter, supervise, worker, psutil or the status server.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["CLEAR", "printable", "render_json", "render_table", "watch"]

#: on a terminal, each --watch frame starts here: cursor home, erase the screen
CLEAR = "\x1b[H\x1b[2J"


def printable(text: str) -> str:
    """`text` safe for a terminal, unquoted: backslashes, control characters and anything
    beyond ASCII escaped (\\\\, \\xhh), so a request line can never move the cursor."""
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text
    out = []
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif code < 32 or code > 126:
            out.append(f"\\x{code:02x}" if code < 256 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


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
    """The snapshot for people: the master, then one row per worker (a busy one with its
    client and request)."""
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
                 f"{'RSS':>7} {'CPU':>8} {'CPU%':>5} {'BEAT':>6}  {'CLIENT':<21}  REQUEST")
    for w in snapshot["workers"]:
        request = client = ""
        if w["request"] is not None:
            request = f"{printable(w['request'])} for {_age(w['request_seconds'])}"
            client = printable(w.get("client") or "-")
        note = f" [{w['retiring'] or w['replacing']}]" if w["retiring"] or w["replacing"] else ""
        cpu = f"{w['cpu_seconds']:.2f}s" if w["cpu_seconds"] is not None else "-"
        percent = f"{w['cpu_percent']:.0f}" if w["cpu_percent"] is not None else "-"
        lines.append((f"{w['number']:>6} {w['pid'] or '-':>7} {w['generation']:>3} "
                      f"{w['state']:<10} {w['requests']:>8} {_size(w['bytes_sent']):>7} "
                      f"{_size(w['rss_bytes']):>7} {cpu:>8} {percent:>5} "
                      f"{_age(w['last_beat_age']):>6}  {client:<21}  {request}{note}").rstrip())
    return "\n".join(lines) + "\n"


def render_json(snapshot: dict[str, Any], compact: bool = False) -> str:
    """The snapshot as JSON: indented, or one line per snapshot (for --watch)."""
    if compact:
        return json.dumps(snapshot, separators=(",", ":")) + "\n"
    return json.dumps(snapshot, indent=1) + "\n"


def watch(frame: Callable[[TextIO], int], seconds: float, out: TextIO | None = None,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Call `frame(out)` every `seconds` until Ctrl-C (exit 0) or until a frame returns
    non-zero (the master is gone: that code). On a terminal each frame replaces the last;
    otherwise frames follow each other, so that a pipe or a file keeps them all."""
    stream = sys.stdout if out is None else out
    terminal = stream.isatty()
    try:
        next_frame = clock()
        while True:
            if terminal:
                stream.write(CLEAR)
            code = frame(stream)
            stream.flush()
            if code != 0:
                return code
            next_frame += seconds
            delay = next_frame - clock()
            if delay > 0:
                sleep(delay)
            else:
                next_frame = clock()  # a slow frame: no burst to catch up
    except KeyboardInterrupt:
        if terminal:
            stream.write("\n")
        return 0
    except BrokenPipeError:  # `forkhttpd status --watch 1 | head`: the reader has gone
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):
            pass
        return 0
