"""The real thing: a Debian bookworm container booted with its own systemd (systemd-nspawn),
forkhttpd installed offline from a wheel built from this tree, the shipped units, and
`systemctl start/reload/stop` plus socket activation checked from inside
(systemd_e2e/inside.py), which writes its results to a bound folder and powers off.

The root filesystem is built once with debootstrap and kept in FORKHTTPD_E2E_CACHE
(default /var/cache/forkhttpd-e2e); each run boots it with --volatile=overlay, so nothing a
run does survives it. Needs root, debootstrap and systemd-container, and network access to
the Debian mirror on the first run and to PyPI (dependency wheels) on every run; without
them the test fails and says which.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .harness import REPO

HERE = Path(__file__).resolve().parent / "systemd_e2e"
CACHE = Path(os.environ.get("FORKHTTPD_E2E_CACHE", "/var/cache/forkhttpd-e2e"))
ROOTFS = CACHE / "bookworm"
COMPLETE = ROOTFS / ".forkhttpd-e2e-complete"
MIRROR = os.environ.get("FORKHTTPD_E2E_MIRROR", "http://deb.debian.org/debian")
# procps: /bin/kill (the units' ExecReload) and ps, as on any real server (minbase lacks it).
PACKAGES = "systemd,systemd-sysv,dbus,python3,python3-venv,curl,procps"
APT = "apt-get install -y debootstrap systemd-container"
BOOT_TIMEOUT = 300.0  # the checks themselves take ~30s; a hung boot must not hang CI

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _require_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("the systemd end-to-end test needs root (debootstrap, systemd-nspawn)")
    missing = [tool for tool in ("debootstrap", "systemd-nspawn") if not shutil.which(tool)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: {APT} (CI: add it to .ci/run)")


def _build_rootfs() -> float:
    """debootstrap once into the cache; seconds spent (0 when cached)."""
    recipe = f"debootstrap {PACKAGES} from {MIRROR}\n"
    if COMPLETE.exists() and COMPLETE.read_text() == recipe:
        return 0.0
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = CACHE / "bookworm.partial"
    log = CACHE / "debootstrap.log"
    began = time.monotonic()
    for attempt in (1, 2):  # once more after a mirror hiccup
        shutil.rmtree(partial, ignore_errors=True)
        with open(log, "wb") as out:
            try:
                result = subprocess.run(
                    ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm",
                     str(partial), MIRROR], stdout=out, stderr=subprocess.STDOUT,
                    timeout=600)
                code = result.returncode
            except subprocess.TimeoutExpired:
                code = -1
        if code == 0:
            break
        shutil.copy(log, CACHE / f"debootstrap-failed-{attempt}.log")
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        pytest.fail(f"debootstrap could not build the container (exit {code}) from {MIRROR}; "
                    f"set FORKHTTPD_E2E_MIRROR for another mirror. Last lines of {log}:\n"
                    f"{tail}")
    shutil.rmtree(ROOTFS, ignore_errors=True)
    partial.rename(ROOTFS)
    COMPLETE.write_text(recipe)
    return time.monotonic() - began


def _source_copy(target: Path) -> Path:
    """What a release would contain, copied out (a build must not litter the work tree)."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, target / name)
    shutil.copytree(REPO / "forkhttpd", target / "forkhttpd",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def _prepare(run: Path) -> None:
    """The bound folder: wheels, units, the app, the driver, and out/ for the results."""
    wheels = run / "wheels"
    wheels.mkdir(parents=True)
    source = _source_copy(run.parent / "source")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(wheels), str(source)], capture_output=True, text=True,
                           timeout=300)
    if built.returncode != 0:
        pytest.fail(f"building the forkhttpd wheel failed:\n{built.stderr[-2000:]}")
    # The dependencies, for an offline install (the container has no network).
    deps_cache = CACHE / "wheels"
    deps_cache.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary",
                              ":all:", "-d", str(deps_cache), "psutil>=5.9",
                              "setproctitle>=1.3", "python-daemon>=3.0"],
                             capture_output=True, text=True, timeout=300)
    if fetched.returncode != 0 and not any(deps_cache.glob("psutil-*.whl")):
        pytest.fail(f"pip download of the dependency wheels failed:\n{fetched.stderr[-2000:]}")
    for wheel in deps_cache.glob("*.whl"):
        shutil.copy(wheel, wheels / wheel.name)
    units = run / "units"
    units.mkdir()
    for name in ("forkhttpd.service", "forkhttpd.socket", "forkhttpd@.service",
                 "forkhttpd@.socket", "forkhttpd.sysusers"):
        shutil.copy(REPO / "systemd" / name, units / name)
    for name in ("inside.py", "e2eapp.py"):
        shutil.copy(HERE / name, run / name)
    (run / "out").mkdir()


def _boot(run: Path, console: Path) -> int | None:
    command = ["systemd-nspawn", "--quiet", "--keep-unit", "--register=no",
               "--volatile=overlay", "--private-network", "-D", str(ROOTFS),
               f"--bind={run}:/e2e",
               f"--bind-ro={HERE / 'e2e-run.service'}:/etc/systemd/system/e2e-run.service",
               "--boot", "systemd.wants=e2e-run.service"]
    with open(console, "wb") as out:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(BOOT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # nspawn asks the container to power off
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # nspawn's own session, which we made
                proc.wait(10)
            return None


def test_systemd_start_reload_socket_activation_stop(tmp_path: Path) -> None:
    _require_tools()
    began = time.monotonic()
    built = _build_rootfs()
    run = tmp_path / "e2e"
    _prepare(run)
    console = tmp_path / "console.log"
    booted = time.monotonic()
    code = _boot(run, console)
    total = time.monotonic() - began
    results_file = run / "out" / "results.json"
    journal = run / "out" / "journal.txt"
    context = ("\n--- console (last 60 lines) ---\n"
               + "\n".join(console.read_text(errors="replace").splitlines()[-60:])
               + (f"\n--- journal ---\n{journal.read_text()[-6000:]}" if journal.exists()
                  else ""))
    assert code is not None, f"the container did not power off in {BOOT_TIMEOUT:g}s{context}"
    assert results_file.exists(), f"no results from the container (nspawn exit {code}){context}"
    report = json.loads(results_file.read_text())
    failed = [r for r in report["results"] if not r["ok"]]
    print(f"\nsystemd e2e: {len(report['results'])} checks, {len(failed)} failed; "
          f"rootfs build {built:.0f}s, boot+checks {time.monotonic() - booted:.0f}s "
          f"(checks {report['seconds']:.0f}s), total {total:.0f}s")
    for result in report["results"]:
        print(f"  {'ok  ' if result['ok'] else 'FAIL'} {result['name']}"
              + (f": {result['detail'][:200]}" if result["detail"] else ""))
    assert not failed, "\n".join(f"{r['name']}: {r['detail']}" for r in failed) + context
    assert len(report["results"]) >= 31
