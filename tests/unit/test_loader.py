"""The app loader tells "not found" from "raised", in one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from forkhttpd.interfaces.loader import AppNotFound, AppRaised, load_app, parse_spec


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "goodmod_t.py").write_text(
        "def handler(rq, rs):\n    rs.data = 'ok'\n"
        "class Box:\n    inner = staticmethod(handler)\n"
        "def factory():\n    return handler\n"
        "def bad_factory():\n    raise RuntimeError('factory broke')\n"
        "nothing = None\n")
    (tmp_path / "brokenmod_t.py").write_text("import os\nraise KeyError('boom at import')\n")
    (tmp_path / "importsmissing_t.py").write_text("import not_a_real_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_parse_spec_forms() -> None:
    assert parse_spec("pkg.mod:attr") == ("pkg.mod", "attr", False)
    assert parse_spec("mod:make()") == ("mod", "make", True)
    assert parse_spec("mysite.wsgi") == ("mysite.wsgi", None, False)
    for bad in ("mod:", ":attr", "mod:attr(", "mod:1x", "a b:c", "web.py"):
        with pytest.raises(AppNotFound, match="expected MODULE, MODULE:ATTR"):
            parse_spec(bad)


def test_a_bare_module_means_application_then_app(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # gunicorn's convention (Django's wsgi.py names its callable `application`)
    (tmp_path / "both_t.py").write_text("def application(e, s): pass\ndef app(e, s): pass\n")
    (tmp_path / "apponly_t.py").write_text("def app(e, s): pass\napplication = None\n")
    (tmp_path / "neither_t.py").write_text("def handler(rq, rs): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert getattr(load_app("both_t", str(tmp_path)), "__name__", "") == "application"
    assert getattr(load_app("apponly_t", str(tmp_path)), "__name__", "") == "app"
    with pytest.raises(AppNotFound, match="neither 'application' nor 'app'.*neither_t:NAME"):
        load_app("neither_t", str(tmp_path))


def test_loads_attr_dotted_attr_and_factory(app_dir: Path) -> None:
    handler = load_app("goodmod_t:handler", str(app_dir))
    assert callable(handler)
    assert load_app("goodmod_t:Box.inner", str(app_dir)) is handler
    assert load_app("goodmod_t:factory()", str(app_dir)) is handler


def test_not_found_messages_name_the_part(app_dir: Path) -> None:
    with pytest.raises(AppNotFound, match="no module named 'nosuchmod_t'"):
        load_app("nosuchmod_t:x", str(app_dir))
    with pytest.raises(AppNotFound, match="has no attribute 'missing'"):
        load_app("goodmod_t:missing", str(app_dir))
    with pytest.raises(AppNotFound, match="is None"):
        load_app("goodmod_t:nothing", str(app_dir))


def test_raised_keeps_the_apps_traceback(app_dir: Path) -> None:
    with pytest.raises(AppRaised) as caught:
        load_app("brokenmod_t:x", str(app_dir))
    assert "KeyError" in str(caught.value) and "\n" not in str(caught.value)
    assert "boom at import" in caught.value.details and "brokenmod_t.py" in caught.value.details
    # a missing dependency of the app is the app's failure, not a typo in --app
    with pytest.raises(AppRaised, match="not_a_real_dependency_xyz"):
        load_app("importsmissing_t:x", str(app_dir))
    with pytest.raises(AppRaised, match="factory broke"):
        load_app("goodmod_t:bad_factory()", str(app_dir))
