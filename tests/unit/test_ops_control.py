"""The pure parts of the operator's commands: ages, titles, the daemon refusal text."""

from __future__ import annotations

from forkhttpd.ops.control import _age, _generation, _short
from forkhttpd.ops.daemon import refuse_under_service_manager


def test_ages_read_like_uptime() -> None:
    assert _age(0) == "0s"
    assert _age(59) == "59s"
    assert _age(61) == "1m 01s"
    assert _age(3 * 3600 + 5 * 60) == "3h 05m"
    assert _age(2 * 86400 + 3600) == "2d 1h 00m"
    assert _age(-5) == "0s"


def test_generation_from_titles() -> None:
    assert _generation("forkhttpd: master [app:h] gen 12 workers 4") == 12
    assert _generation("forkhttpd: worker 3 gen 2 [app:h] idle 0 reqs") == 2
    assert _generation("python -m forkhttpd") is None
    assert _short("forkhttpd: master [x] gen 1") == "master [x] gen 1"


def test_daemon_is_refused_only_under_a_service_manager() -> None:
    assert refuse_under_service_manager({}) is None
    why = refuse_under_service_manager({"NOTIFY_SOCKET": "/run/systemd/notify"})
    assert why is not None and "NOTIFY_SOCKET" in why and "Drop --daemon" in why
