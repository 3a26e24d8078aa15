"""Which source files an imported app is made of, for --reload: the .py files of the modules
a zygote imported that belong to neither Python, its installed packages nor forkhttpd, and the
files a failed import's traceback names; standard library only, nothing else of forkhttpd.

The zygote computes them (it alone imports the app) and tells the master, which watches them:
the master never imports the app, so it cannot know them by itself.
"""

from __future__ import annotations

import os
import re
import site
import sys
import sysconfig
from collections.abc import Iterable
from types import ModuleType

__all__ = ["app_source_files", "excluded_dirs", "files_in_traceback"]

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line \d+', re.MULTILINE)


def excluded_dirs() -> list[str]:
    """Directories whose files are not the app's: the standard library, site-packages (the
    system's, the user's, a virtualenv's), the interpreter's prefixes and forkhttpd itself."""
    paths = sysconfig.get_paths()
    dirs = [paths.get(key, "") for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    dirs += [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # some virtualenvs' site module
        pass
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else ""
    dirs.append(user_site if isinstance(user_site, str) else "")
    dirs.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # forkhttpd/
    return sorted({os.path.realpath(d) for d in dirs if d and os.path.realpath(d) != os.sep})


def _inside(path: str, directories: Iterable[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in directories)


def app_source_files(modules: Iterable[ModuleType | object],
                     excluded: Iterable[str]) -> list[str]:
    """The real paths of the .py files of `modules` (sys.modules' values) outside `excluded`,
    sorted. Modules without a file (builtins, frozen, namespace packages) and compiled
    extensions are left out: a change to an extension needs a restart anyway."""
    excluded = [os.path.realpath(d) for d in excluded]
    files: set[str] = set()
    for module in modules:
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py"):
            continue
        real = os.path.realpath(path)
        if not _inside(real, excluded):
            files.add(real)
    return sorted(files)


def files_in_traceback(text: str, excluded: Iterable[str]) -> list[str]:
    """The .py files a formatted traceback names (a SyntaxError names its file the same way)
    that exist and are outside `excluded`: after a failed import, the file to fix may be one
    that never made it into sys.modules."""
    excluded = [os.path.realpath(d) for d in excluded]
    files: set[str] = set()
    for match in _FRAME.finditer(text):
        path = match["file"]
        if not path.endswith(".py") or not os.path.isfile(path):
            continue
        real = os.path.realpath(path)
        if not _inside(real, excluded):
            files.add(real)
    return sorted(files)
