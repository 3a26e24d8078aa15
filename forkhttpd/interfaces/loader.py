"""Turn an app spec ("pkg.mod:attr", "pkg.mod:factory()" or "pkg.mod") into the object it
names; must not import the worker's loop or process, config or master (it runs inside zygotes
and throwaway check processes).

A bare module ("mysite.wsgi", as gunicorn users write it) means its `application`, else its
`app`: the names Django's and most other WSGI projects' entry modules use.

Errors tell "not found" (a typo in the spec: one line says which part) from "raised" (the
app's own code failed: its traceback is kept, labelled as the app's).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback

__all__ = ["AppLoadError", "AppNotFound", "AppRaised", "load_app", "parse_spec"]

_SPEC = re.compile(
    r"^(?P<module>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)"
    r"(?::(?P<attr>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)(?P<call>\(\))?)?$"
)
DEFAULT_ATTRS = ("application", "app")  # tried in this order for a bare MODULE


class AppLoadError(Exception):
    """The app could not be loaded; str() is a one-line message fit for a person."""

    details: str = ""


class AppNotFound(AppLoadError):
    """The module or attribute named by the spec does not exist."""


class AppRaised(AppLoadError):
    """The app's module (or factory) raised; `details` holds its traceback."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


def parse_spec(spec: str) -> tuple[str, str | None, bool]:
    """"pkg.mod:attr" -> ("pkg.mod", "attr", False); "pkg.mod:make()" -> (..., "make", True);
    "pkg.mod" -> ("pkg.mod", None, False): its `application`, else its `app`."""
    match = _SPEC.match(spec.strip())
    if match is None or spec.strip().endswith(".py"):
        raise AppNotFound(
            f"--app: expected MODULE, MODULE:ATTR or MODULE:FACTORY(), got {spec!r}")
    return match["module"], match["attr"], match["call"] is not None


def _app_traceback(error: BaseException) -> str:
    """The traceback without forkhttpd's own frames above the app's first frame."""
    lines = traceback.format_exception(error)
    return "".join(line for line in lines if "importlib._bootstrap" not in line)


def _is_missing(error: ModuleNotFoundError, module: str) -> bool:
    """True when the spec's module (or a parent package of it) is what does not exist,
    rather than something the app's module itself tried to import."""
    parts = module.split(".")
    candidates = {".".join(parts[: i + 1]) for i in range(len(parts))}
    return error.name in candidates


def load_app(spec: str, directory: str | None = None) -> object:
    """Import the module named by `spec` and return the attribute (or the factory's result).

    `directory` (default: the current one) goes first on sys.path, as gunicorn does, so that
    `forkhttpd --app mymod:handler` finds mymod.py where the command runs.
    """
    module_name, attr_path, call = parse_spec(spec)
    path_entry = os.path.abspath(directory or os.getcwd())
    if path_entry not in sys.path:
        sys.path.insert(0, path_entry)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if _is_missing(error, module_name):
            raise AppNotFound(f"--app {spec}: no module named {error.name!r} "
                              f"(looked in {path_entry} and sys.path)") from None
        raise AppRaised(f"--app {spec}: importing {module_name!r} raised "
                        f"{type(error).__name__}: {error}", _app_traceback(error)) from None
    except BaseException as error:  # noqa: BLE001 - the app's failure, whatever it is
        if isinstance(error, (KeyboardInterrupt, SystemExit)) and not isinstance(
                error, SystemExit):
            raise
        raise AppRaised(f"--app {spec}: importing {module_name!r} raised "
                        f"{type(error).__name__}: {error}", _app_traceback(error)) from None
    if attr_path is None:
        found = [name for name in DEFAULT_ATTRS if getattr(module, name, None) is not None]
        if not found:
            raise AppNotFound(f"--app {spec}: module {module_name!r} has neither "
                              "'application' nor 'app'; name the object: "
                              f"--app {module_name}:NAME")
        attr_path = found[0]
    target: object = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppNotFound(f"--app {spec}: module {module_name!r} has no attribute "
                              f"{attr_path!r}") from None
    if call:
        if not callable(target):
            raise AppNotFound(f"--app {spec}: {attr_path!r} is not callable")
        try:
            target = target()
        except Exception as error:
            raise AppRaised(f"--app {spec}: the factory {attr_path}() raised "
                            f"{type(error).__name__}: {error}", _app_traceback(error)) from None
    if target is None:
        raise AppNotFound(f"--app {spec}: {attr_path!r} is None")
    return target
