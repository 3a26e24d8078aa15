"""runtime.hooks: loading a hooks module (dotted name or .py file), its errors, calling hooks
so that one that raises is logged with its name, and the read-only views."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import pytest

from forkhttpd.config.settings import Settings, SettingsError, load_settings
from forkhttpd.runtime import hooks as hooks_module
from forkhttpd.runtime.hooks import (
    HookError,
    ServerView,
    WorkerView,
    load_hooks,
    settings_view,
)


@pytest.fixture
def caught(caplog: pytest.LogCaptureFixture,
           monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    # the error log may not propagate (another test configured it): caplog is on the root
    monkeypatch.setattr(logging.getLogger("forkhttpd.error"), "propagate", True)
    return caplog


def hooks_file(tmp_path: Path, text: str, name: str = "hooks.py") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_no_spec_means_no_hooks() -> None:
    hooks = load_hooks(None)
    assert not hooks and hooks.call("post_fork", object())


def test_a_file_defines_some_hooks(tmp_path: Path) -> None:
    spec = hooks_file(tmp_path, "seen = []\n"
                                "def post_fork(worker):\n    seen.append(worker)\n"
                                "def helper():\n    pass\n")
    hooks = load_hooks(spec)
    assert hooks.has("post_fork") and not hooks.has("when_ready")
    assert hooks.call("post_fork", "w1") is True
    assert sys.modules["forkhttpd_hooks"].seen == ["w1"]


def test_only_the_names_asked_for(tmp_path: Path) -> None:
    spec = hooks_file(tmp_path, "def post_fork(worker): pass\ndef when_ready(server): pass\n")
    assert set(load_hooks(spec, ("when_ready",)).functions) == {"when_ready"}


def test_a_file_is_read_anew_each_time(tmp_path: Path) -> None:
    spec = hooks_file(tmp_path, "def on_reload(server):\n    return 1\n")
    first = load_hooks(spec)
    Path(spec).write_text("def on_reload(server):\n    raise ValueError('two')\n")
    second = load_hooks(spec)
    assert first.call("on_reload", None) is True
    assert second.call("on_reload", None) is False


def test_a_dotted_module_is_reloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "deployhooks_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "hooks.py").write_text("def when_ready(server):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_hooks("deployhooks_pkg.hooks").has("when_ready")
    (package / "hooks.py").write_text("def on_starting(server):\n    pass\n")
    reloaded = load_hooks("deployhooks_pkg.hooks")
    assert reloaded.has("on_starting")
    for name in ("deployhooks_pkg", "deployhooks_pkg.hooks"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("text, message", [
    ("raise RuntimeError('no database')\n",
     "importing it raised RuntimeError: no database"),
    ("def post_fork(:\n", "importing it raised SyntaxError"),
    ("post_fork = 3\n", "post_fork is not a function"),
    ("def post_fork():\n    pass\n", "post_fork must take 1 argument (worker)"),
    ("def child_exit(server):\n    pass\n", "child_exit must take 2 arguments (server, worker)"),
    ("import no_such_module_here\n", "importing it raised ModuleNotFoundError"),
])
def test_a_module_that_cannot_serve(tmp_path: Path, text: str, message: str) -> None:
    spec = hooks_file(tmp_path, text)
    with pytest.raises(HookError) as error:
        load_hooks(spec)
    assert str(error.value).startswith(f"--hooks {spec}: ")
    assert message in str(error.value) and "\n" not in str(error.value)
    if "importing" in message:
        assert "Traceback" in error.value.details and "importlib._bootstrap" not in (
            error.value.details)


def test_missing_module_or_file(tmp_path: Path) -> None:
    with pytest.raises(HookError, match="no module named 'no_such_hooks'$"):
        load_hooks("no_such_hooks.mod")
    with pytest.raises(HookError, match="no such file$"):
        load_hooks(str(tmp_path / "absent.py"))


def test_a_hook_that_raises_is_logged_with_its_name(tmp_path: Path,
                                                     caught: pytest.LogCaptureFixture) -> None:
    spec = hooks_file(tmp_path, "def worker_exit(worker):\n    raise KeyError('conn')\n")
    assert load_hooks(spec).call("worker_exit", None) is False
    [record] = [r for r in caught.records if r.name == "forkhttpd.error"]
    assert record.levelname == "ERROR"
    message = record.getMessage()
    assert message.startswith(f"hook worker_exit ({spec}) raised KeyError: 'conn'\n")
    assert "raise KeyError('conn')" in message  # the hook's own traceback, not ours
    assert "hooks.py\", line" in message and "runtime/hooks.py" not in message


def test_call_or_raise_for_the_hooks_that_stop_a_start(tmp_path: Path) -> None:
    spec = hooks_file(tmp_path, "def when_ready(server):\n    raise OSError('no cache')\n")
    with pytest.raises(HookError) as error:
        load_hooks(spec).call_or_raise("when_ready", None)
    assert str(error.value) == f"hook when_ready ({spec}) raised OSError: no cache"
    assert "raise OSError('no cache')" in error.value.details


def test_a_misspelt_hook_is_warned_about(tmp_path: Path,
                                          caught: pytest.LogCaptureFixture) -> None:
    spec = hooks_file(tmp_path, "def post_forks(worker):\n    pass\n"
                                "def setup_db():\n    pass\n")
    assert not load_hooks(spec)
    messages = [r.getMessage() for r in caught.records]
    assert messages == [f"--hooks {spec}: post_forks is not a hook; did you mean post_fork?"]


def test_views_are_read_only() -> None:
    values = settings_view(Settings(workers=3))
    assert values["workers"] == 3
    with pytest.raises(TypeError):
        values["workers"] = 4  # type: ignore[index]
    server = ServerView(10, 2, 3, "app:app", ("127.0.0.1:8000",), values)
    worker = WorkerView(11, 1, 2, 10, "app:app", values)
    for view in (server, worker):
        with pytest.raises(dataclasses.FrozenInstanceError):
            view.pid = 1  # type: ignore[misc]


def test_settings_view_of_a_zygote_copy() -> None:
    from types import SimpleNamespace

    assert dict(settings_view(SimpleNamespace(workers=2))) == {"workers": 2}


def test_the_hooks_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(["--hooks", "deploy.hooks"], {}).hooks == "deploy.hooks"
    monkeypatch.chdir(tmp_path)
    assert load_settings(["--hooks", "hooks.py"], {}).hooks == str(tmp_path / "hooks.py")
    with pytest.raises(SettingsError, match="--hooks: expected a dotted module name or a .py "
                                            "file, got 'deploy/hooks'"):
        load_settings(["--hooks", "deploy/hooks"], {})


def test_every_hook_is_in_exactly_one_process() -> None:
    assert set(hooks_module.MASTER_HOOKS) | set(hooks_module.WORKER_HOOKS) == set(
        hooks_module.HOOKS)
    assert not set(hooks_module.MASTER_HOOKS) & set(hooks_module.WORKER_HOOKS)
