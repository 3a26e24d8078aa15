"""The package as users get it: the sdist carries the licence, changelog, docs, samples,
systemd units and tests; the metadata says MIT (SPDX) with its classifiers; and one version
is what --version, WSGI's SERVER_SOFTWARE and the build information all show."""

from __future__ import annotations

import email
import importlib.util
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from forkhttpd.runtime.version import __version__, build_info

from .harness import REPO
from .ops_support import run_forkhttpd

SDIST_MUST_HOLD = [
    "LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "forkhttpd/py.typed",
    "forkhttpd/runtime/version.py", "docs/deploy.md", "docs/errors.md", "docs/settings.md",
    "etc/forkhttpd.toml", "etc/logrotate.d/forkhttpd", "systemd/forkhttpd.service",
    "systemd/forkhttpd@.service", "systemd/forkhttpd.socket", "systemd/forkhttpd@.socket",
    "tests/integration/harness.py", "tests/unit/test_logs.py", ".ci/run",
]


def _can_build() -> bool:
    if importlib.util.find_spec("build") is None:
        return False
    import setuptools

    return int(setuptools.__version__.split(".")[0]) >= 77


@pytest.mark.slow
@pytest.mark.skipif(not _can_build(), reason="needs `build` and setuptools>=77 (the [test] "
                                               "extra installs both)")
def test_the_sdist(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir",
                    str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    (sdist,) = tmp_path.glob("forkhttpd-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        root = names[0].split("/")[0]
        pkg_info = archive.extractfile(f"{root}/PKG-INFO")
        assert pkg_info is not None
        metadata = email.message_from_bytes(pkg_info.read())
    files = {name.split("/", 1)[1] for name in names if "/" in name}
    missing = [name for name in SDIST_MUST_HOLD if name not in files]
    assert not missing, missing
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]
    assert metadata["Version"] == __version__ and root == f"forkhttpd-{__version__}"
    assert metadata["License-Expression"] == "MIT"
    assert metadata["License-File"] == "LICENSE"
    classifiers = metadata.get_all("Classifier") or []
    for wanted in ("Programming Language :: Python :: 3.11",
                   "Programming Language :: Python :: 3.12",
                   "Programming Language :: Python :: 3.13",
                   "Operating System :: POSIX :: Linux",
                   "Topic :: Internet :: WWW/HTTP :: HTTP Servers", "Typing :: Typed"):
        assert wanted in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # SPDX says it
    urls = metadata.get_all("Project-URL") or []
    assert any(url.startswith("Source, https://") for url in urls)
    assert metadata["Author"]


def test_one_version_everywhere(start_server: Any) -> None:
    result = run_forkhttpd("--version")
    assert result.returncode == 0 and result.stdout == f"forkhttpd {__version__}\n"
    server = start_server("--app", "wsgi_apps:app", "--interface", "wsgi")
    status, _, body = server.request(path="/environ")
    assert status == 200
    assert json.loads(body)["SERVER_SOFTWARE"] == f"forkhttpd/{__version__}"
    assert build_info()["version"] == __version__
    assert "0.1.0" not in (REPO / "forkhttpd" / "__init__.py").read_text()  # not written twice
