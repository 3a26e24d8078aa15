"""Server hooks (--hooks): load the hooks module, call its functions so that one that raises is
logged with its name, and the read-only views the hooks receive; imports nothing of forkhttpd
but the logs, since the master, the zygotes and the workers all call hooks.

The master imports the hooks module for its own hooks (on_starting, when_ready, on_reload,
child_exit) and again on every reload; each generation's zygote imports it after the app,
for the workers' hooks (post_fork, worker_exit, worker_abort), which its workers inherit
with the app. A hook is given a `ServerView` or a `WorkerView`: plain frozen data (PIDs,
numbers, the settings' values), never the arbiter or the worker objects themselves, so a
hook cannot reach into the master's state and nothing it keeps can go stale in surprising
ways.

Workers import this module whether or not hooks are given: importlib, inspect and traceback
load only when a hooks module is loaded or a hook raises.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

from . import logs

__all__ = ["HOOKS", "HookError", "Hooks", "MASTER_HOOKS", "ServerView", "WORKER_HOOKS",
           "WorkerView", "load_hooks", "settings_view"]

#: hook name -> its parameters (each is called with exactly these)
HOOKS: dict[str, tuple[str, ...]] = {
    "on_starting": ("server",),
    "when_ready": ("server",),
    "on_reload": ("server",),
    "child_exit": ("server", "worker"),
    "post_fork": ("worker",),
    "worker_exit": ("worker",),
    "worker_abort": ("worker",),
}
MASTER_HOOKS = ("on_starting", "when_ready", "on_reload", "child_exit")
WORKER_HOOKS = ("post_fork", "worker_exit", "worker_abort")
_FILE_MODULE = "forkhttpd_hooks"  # the name a hooks module loaded from a .py file gets


class HookError(Exception):
    """The hooks module cannot be used, or a hook that must succeed raised; str() is one
    line, `details` the traceback of the hooks module's own code (if any)."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def settings_view(settings: Any) -> Mapping[str, Any]:
    """The settings' values as a read-only mapping (from Settings or a zygote's copy)."""
    names = getattr(settings, "__dataclass_fields__", None)
    values = ({name: getattr(settings, name) for name in names} if names is not None
              else dict(vars(settings)))
    return MappingProxyType(values)


@dataclass(frozen=True)
class ServerView:
    """What a master hook is told of the server, as it is at the call."""

    pid: int  # the master's
    generation: int  # the generation that serves (or loads, before any serves); 0: none yet
    workers: int  # how many workers are wanted
    app: str  # the app's label, as in process titles
    addresses: tuple[str, ...]  # the listening addresses
    settings: Mapping[str, Any] = field(default_factory=dict)  # read-only: name -> value


@dataclass(frozen=True)
class WorkerView:
    """What a worker hook (and child_exit) is told of one worker."""

    pid: int
    number: int  # 1, 2, 3... in the order the master asked for workers; never reused
    generation: int
    master_pid: int
    app: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    # child_exit only: why it ended (reload, shutdown, timeout, crash, max-requests...),
    # its wait status in words ("exit code 0", "signal SIGKILL") and the requests it served
    reason: str = ""
    status: str = ""
    requests: int = 0


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _user_traceback(error: BaseException, skip_own_frame: bool = False) -> str:
    """The traceback without importlib's frames (as the app loader shows the app's), and
    without the frame of this module that called the hook."""
    import traceback

    tb = error.__traceback__
    if skip_own_frame and tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(line for line in traceback.format_exception(type(error), error, tb)
                   if "importlib._bootstrap" not in line)


class Hooks:
    """The hooks a module defines; a name it does not define is a hook that does nothing."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]] | None = None,
                 source: str = "") -> None:
        self.functions = dict(functions or {})
        self.source = source

    def __bool__(self) -> bool:
        return bool(self.functions)

    def has(self, name: str) -> bool:
        return name in self.functions

    def call(self, name: str, *args: Any) -> bool:
        """Run hook `name`; if it raises, log the error with the hook's name and its
        traceback, and go on. False when it raised."""
        function = self.functions.get(name)
        if function is None:
            return True
        try:
            function(*args)
        except BaseException as error:  # noqa: BLE001 - a hook never takes the server down
            if isinstance(error, KeyboardInterrupt):
                raise
            logs.error_log.error("hook %s (%s) raised %s\n%s", name, self.source,
                                 _describe(error), _user_traceback(error, True).rstrip("\n"))
            return False
        return True

    def call_or_raise(self, name: str, *args: Any) -> None:
        """Run hook `name`; if it raises, HookError (for the hooks that stop a start)."""
        function = self.functions.get(name)
        if function is None:
            return
        try:
            function(*args)
        except Exception as error:
            raise HookError(f"hook {name} ({self.source}) raised {_describe(error)}",
                            _user_traceback(error, True)) from None


def _import(spec: str) -> ModuleType:
    """The hooks module, executed anew (a reload must see the file as it is now)."""
    import importlib
    import importlib.util

    if spec.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(_FILE_MODULE, spec)
        if module_spec is None or module_spec.loader is None:
            raise HookError(f"--hooks {spec}: not a Python file that can be loaded")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[_FILE_MODULE] = module  # dataclasses and pickling look it up there
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(_FILE_MODULE, None)
            raise
        return module
    importlib.invalidate_caches()
    if spec in sys.modules:
        return importlib.reload(sys.modules[spec])
    return importlib.import_module(spec)


def load_hooks(spec: str | None, names: tuple[str, ...] = tuple(HOOKS)) -> Hooks:
    """Import the hooks module named by `spec` (a dotted name or a .py file) and take the
    hooks of `names` it defines; HookError (one line, and the module's traceback) when it
    cannot be imported, or a hook is not a function of the right parameters."""
    if not spec:
        return Hooks()
    import inspect

    try:
        module = _import(spec)
    except FileNotFoundError:
        raise HookError(f"--hooks {spec}: no such file") from None
    except ModuleNotFoundError as error:
        if error.name and spec.startswith(error.name):
            raise HookError(f"--hooks {spec}: no module named {error.name!r}") from None
        raise HookError(f"--hooks {spec}: importing it raised {_describe(error)}",
                        _user_traceback(error)) from None
    except HookError:
        raise
    except BaseException as error:  # noqa: BLE001 - the module's own failure
        if isinstance(error, KeyboardInterrupt):
            raise
        raise HookError(f"--hooks {spec}: importing it raised {_describe(error)}",
                        _user_traceback(error)) from None
    functions: dict[str, Callable[..., Any]] = {}
    for name in names:
        function = getattr(module, name, None)
        if function is None:
            continue
        if not callable(function):
            raise HookError(f"--hooks {spec}: {name} is not a function")
        params = HOOKS[name]
        try:
            inspect.signature(function).bind(*params)
        except TypeError:
            raise HookError(f"--hooks {spec}: {name} must take {len(params)} argument"
                            f"{'s' if len(params) > 1 else ''} ({', '.join(params)})") from None
        except ValueError:
            pass  # no signature to inspect (a builtin): it is called as it is
        functions[name] = function
    _warn_near_misses(module, spec)
    return Hooks(functions, spec)


def _warn_near_misses(module: ModuleType, spec: str) -> None:
    """A function named almost like a hook (post_forks, onstarting) is most likely one whose
    name is misspelt, and would silently never run."""
    import difflib
    import inspect

    for name, value in vars(module).items():
        if name in HOOKS or name.startswith("_") or not inspect.isfunction(value) or (
                value.__module__ != module.__name__):
            continue
        close = difflib.get_close_matches(name, list(HOOKS), n=1, cutoff=0.85)
        if close:
            logs.error_log.warning("--hooks %s: %s is not a hook; did you mean %s?", spec,
                                   name, close[0])
