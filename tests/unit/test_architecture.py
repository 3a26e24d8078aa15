"""The architecture as checks that can fail: import-linter's contracts (pyproject.toml) and
two AST rules, each proven by breaking a temporary copy of the package once."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "forkhttpd"

# Who may do what to processes and client sockets (paths relative to the package's parent).
# The master package owns fork/wait/kill; ops.control signals a running master by PID (it
# is the `forkhttpd reload|stop|...` command, a process of its own); the CGI gateway ends the
# process group of a program it started itself (subprocess, in its own session) at
# --cgi-timeout, so that a background child holding its output cannot outlive the deadline.
PROCESS_POWERS = ("os.fork", "os.forkpty", "os.waitpid", "os.wait", "os.wait3", "os.wait4",
                  "os.kill", "os.killpg")
PROCESS_OWNERS = ("forkhttpd/master/",)
PROCESS_EXCEPTIONS = {"os.kill": {"forkhttpd/ops/control.py"},
                      "os.killpg": {"forkhttpd/interfaces/cgi.py"}}

# Client-socket I/O belongs to the worker package. The exceptions talk on sockets that are
# not a client's: the master's status endpoint (an operator's port), systemd's notify
# datagram, the daemon's ready pipe.
SOCKET_CALLS = ("send", "sendall", "sendto", "sendmsg", "sendfile", "recv", "recv_into",
                "recvfrom", "recvmsg")
SOCKET_OWNERS = ("forkhttpd/worker/",)
SOCKET_EXCEPTIONS = {"forkhttpd/master/status_http.py", "forkhttpd/master/status.py",
                     "forkhttpd/runtime/systemd.py", "forkhttpd/ops/daemon.py"}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports over the package under `root`, with that tree's pyproject.toml."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))")
    return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(root),
                                                       "PATH": "/usr/bin:/bin"})


def package_files(root: Path) -> list[Path]:
    return sorted((root / "forkhttpd").rglob("*.py"))


def rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def process_power_users(root: Path) -> dict[str, set[str]]:
    """call -> the modules outside their owner that make it (os.fork(), or `from os import
    fork` then fork())."""
    found: dict[str, set[str]] = {call: set() for call in PROCESS_POWERS}
    for path in package_files(root):
        name = rel(path, root)
        if name.startswith(PROCESS_OWNERS):
            continue
        tree = ast.parse(path.read_text())
        aliases = {alias.asname or alias.name: f"os.{alias.name}"
                   for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and node.module == "os" for alias in node.names}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                called = f"{func.value.id}.{func.attr}"
            elif isinstance(func, ast.Name):
                called = aliases.get(func.id, "")
            else:
                continue
            if called in found and name not in PROCESS_EXCEPTIONS.get(called, set()):
                found[called].add(name)
    return {call: users for call, users in found.items() if users}


def socket_io_users(root: Path) -> set[str]:
    """Modules outside the worker package that call a socket's send/recv family (as a
    method on anything but their own object, or os.sendfile)."""
    users = set()
    for path in package_files(root):
        name = rel(path, root)
        if name.startswith(SOCKET_OWNERS) or name in SOCKET_EXCEPTIONS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in SOCKET_CALLS
                    and not (isinstance(node.func.value, ast.Name)
                             and node.func.value.id == "self")):
                users.add(f"{name}:{node.lineno}")
    return users


@pytest.fixture(scope="module")
def broken_copy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine copy of the package and its pyproject.toml, to break one rule at a time."""
    root = tmp_path_factory.mktemp("arch")
    shutil.copytree(PACKAGE, root / "forkhttpd",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_import_contracts_hold() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("worker/exchange.py", "from ..master import arbiter", "Each role imports only"),
    ("protocol/head.py", "from ..worker import loop", "Each role imports only"),
    ("interfaces/native.py", "from ..config import settings", "Each role imports only"),
    ("protocol/limits.py", "import socket", "The protocol is sans-I/O"),
    ("worker/loop.py", "import psutil", "Only the master's health module"),
    ("worker/parts.py", "from . import loop", "No import cycles"),
], ids=lambda v: str(v).split("/")[0] if "/" in str(v) else str(v)[:20])
def test_each_contract_can_fail(broken_copy_root: Path, module: str, line: str,
                                contract: str) -> None:
    target = broken_copy_root / "forkhttpd" / module
    original = target.read_text()
    try:
        # after the module docstring and `from __future__`, as a real import would sit
        lines = original.splitlines(keepends=True)
        at = next(node.lineno - 1 for node in ast.parse(original).body[1:]
                  if not (isinstance(node, ast.ImportFrom) and node.module == "__future__"))
        target.write_text("".join(lines[:at]) + line + "\n" + "".join(lines[at:]))
        result = lint_imports(broken_copy_root)
    finally:
        target.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout


def test_process_powers_have_one_owner() -> None:
    assert process_power_users(REPO) == {}


def test_client_socket_io_only_in_the_worker() -> None:
    assert socket_io_users(REPO) == set()


@pytest.mark.parametrize(("module", "code", "rule"), [
    ("interfaces/native.py", "os.kill(1, 0)", "process"),
    ("interfaces/cgi.py", "fork()", "process-from-import"),
    ("interfaces/wsgi.py", "os.waitpid(-1, 1)", "process"),
    ("worker/loop.py", "os.fork()", "process"),
    ("interfaces/native.py", "sock.send(b'')", "socket"),
    ("master/arbiter.py", "conn.recv_into(buf)", "socket"),
])
def test_ast_rules_can_fail(broken_copy_root: Path, module: str, code: str, rule: str) -> None:
    target = broken_copy_root / "forkhttpd" / module
    original = target.read_text()
    extra = f"\n\ndef _broken(sock, conn, buf):  # type: ignore[no-untyped-def]\n    {code}\n"
    if rule == "process-from-import":
        extra = "\nfrom os import fork\n" + extra
    try:
        target.write_text(original + extra)
        if rule.startswith("process"):
            users = process_power_users(broken_copy_root)
            assert any(f"forkhttpd/{module}" in names for names in users.values()), users
        else:
            assert any(name.startswith(f"forkhttpd/{module}:")
                       for name in socket_io_users(broken_copy_root))
    finally:
        target.write_text(original)
    # and the pristine copy passes again
    assert process_power_users(broken_copy_root) == {}
    assert socket_io_users(broken_copy_root) == set()


def test_no_module_sits_at_the_root_beyond_the_entry_points() -> None:
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py",
                                                             "cli.py"]


def test_every_module_says_its_job() -> None:
    missing = [rel(p, REPO) for p in package_files(REPO)
               if not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []
