"""Imports point one way; each system-level power has one owner; modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "forkhttpd"
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package_parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                   for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # annotations only: no import at run time
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level]
                if path.name == "__init__.py":
                    base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join(base + ((node.module,) if node.module else ()))
                found.add(module)
                if not node.module:
                    found.update(f"{module}.{alias.name}" for alias in node.names)
            elif node.module:
                found.add(node.module)
    return found


def calls_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names.add(f"{node.value.id}.{node.attr}")
    return names


def rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", [p for p in MODULES if "protocol" in p.parts], ids=rel)
def test_protocol_is_sans_io_and_standalone(path: Path) -> None:
    for name in imports_of(path):
        assert name.split(".")[0] not in {"socket", "select", "selectors", "os", "signal",
                                          "psutil", "threading", "asyncio"}, name
        if name.startswith("forkhttpd"):
            assert name.startswith("forkhttpd.protocol"), f"{rel(path)} imports {name}"


# the arbiter package forks, waits and signals; control.py only signals a master by PID
OWNERS = {
    "os.fork": set(),
    "os.waitpid": set(),
    "os.kill": {"forkhttpd/control.py"},
    "os.killpg": set(),
}


@pytest.mark.parametrize("call", sorted(OWNERS))
def test_process_powers_have_one_owner(call: str) -> None:
    users = {rel(p) for p in MODULES if call in calls_of(p)
             and not rel(p).startswith("forkhttpd/arbiter/")}
    assert users <= OWNERS[call], f"{call} used in {users - OWNERS[call]}"


def test_psutil_only_in_supervision() -> None:
    users = {rel(p) for p in MODULES if any(n.split(".")[0] == "psutil" for n in imports_of(p))}
    assert users <= {"forkhttpd/supervision.py"}, users


def test_the_master_never_imports_application_loading() -> None:
    # only the zygote (and throwaway check processes) load the app
    for path in (PACKAGE / "arbiter").glob("*.py"):
        assert "forkhttpd.interfaces.loader" not in imports_of(path), rel(path)


def socket_calls(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            owner = node.func.value
            if name in ("recv", "recv_into", "sendall") or (
                    name == "sendfile" and isinstance(owner, ast.Name) and owner.id == "os"):
                found.add(name)
    return found


def test_only_serve_touches_client_sockets() -> None:
    # recv/send/sendfile on client sockets live in the serve package only (systemd.py,
    # listeners.py and the status/control modules talk to their own non-client sockets)
    allowed = {"forkhttpd/systemd.py", "forkhttpd/listeners.py", "forkhttpd/status.py",
               "forkhttpd/control.py"}
    for path in MODULES:
        if rel(path) not in allowed and not rel(path).startswith("forkhttpd/serve/"):
            assert not socket_calls(path), f"{rel(path)} calls {socket_calls(path)}"


LOWER = {  # a module may not import these (upward or sideways)
    "request": {"serve", "worker", "arbiter", "supervision", "cli", "exchange"},
    "response": {"serve", "worker", "arbiter", "supervision", "cli", "exchange"},
    "exchange": {"serve", "worker", "arbiter", "supervision", "cli"},
    "serve/loop": {"worker", "arbiter", "supervision", "cli"},
    "serve/connection": {"worker", "arbiter", "supervision", "cli"},
    "worker": {"arbiter", "supervision", "cli"},
    "supervision": {"arbiter", "worker", "serve", "cli"},
    "settings": {"serve", "worker", "arbiter", "supervision", "cli", "protocol"},
    "loader": {"serve", "worker", "arbiter", "cli"},
    "static": {"serve", "worker", "arbiter", "cli"},
    "planning": {"serve", "worker", "arbiter", "supervision", "cli"},
}


@pytest.mark.parametrize("module", sorted(LOWER))
def test_imports_point_one_way(module: str) -> None:
    path = PACKAGE / f"{module}.py"
    forbidden = {f"forkhttpd.{name}" for name in LOWER[module]}
    path = PACKAGE / f"{module}.py"
    bad = {name for name in imports_of(path) if any(
        name == f or name.startswith(f + ".") for f in forbidden)}
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_modules_are_small_and_say_their_job(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= 470, f"{rel(path)} has {len(text.splitlines())} lines"
    docstring = ast.get_docstring(ast.parse(text))
    assert docstring, f"{rel(path)} has no module docstring"
