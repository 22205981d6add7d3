"""The report page's compiled template is kept under the user cache and reused by the next
process; a broken or unwritable cache only means compiling again."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustmh.report import html

PAGE = "report.html.j2"


@pytest.fixture
def fresh_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A template environment built anew under a user cache of this test's own."""
    monkeypatch.setenv("TRUSTMH_CACHE_DIR", str(tmp_path / "user-cache"))
    html._environment.cache_clear()
    yield lambda: (html._environment.cache_clear(), html._environment())[1]
    html._environment.cache_clear()


def cached_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "user-cache" / "templates").rglob("*.cache"))


def refuse_compiling(env, monkeypatch: pytest.MonkeyPatch) -> None:
    def compile_refused(*args, **kwargs):
        raise AssertionError("compiled although a compiled copy was cached")

    monkeypatch.setattr(env, "compile", compile_refused)


def test_the_next_environment_loads_the_compiled_page(fresh_environment, tmp_path, monkeypatch):
    first = fresh_environment()
    first.get_template(PAGE)  # compiles it and stores the compiled copy
    assert len(cached_files(tmp_path)) == 1
    second = fresh_environment()
    refuse_compiling(second, monkeypatch)
    assert second.get_template(PAGE).name == PAGE  # loaded: compiling would have raised


def test_a_corrupt_cached_copy_is_compiled_again(fresh_environment, tmp_path, monkeypatch):
    fresh_environment().get_template(PAGE)
    (stored,) = cached_files(tmp_path)
    stored.write_bytes(b"j2 not a compiled template")
    compiled = []
    env = fresh_environment()
    original = env.compile
    monkeypatch.setattr(env, "compile", lambda *a, **k: compiled.append(1) or original(*a, **k))
    assert env.get_template(PAGE).name == PAGE and compiled == [1]


def test_a_cache_that_cannot_be_made_only_means_compiling(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TRUSTMH_CACHE_DIR", str(blocker))
    html._environment.cache_clear()
    try:
        assert html._environment().bytecode_cache is None
        assert html._environment().get_template(PAGE).name == PAGE
    finally:
        html._environment.cache_clear()


def test_a_full_disk_only_means_compiling(fresh_environment, tmp_path, monkeypatch):
    import errno

    from jinja2 import bccache

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    env = fresh_environment()
    monkeypatch.setattr(bccache.tempfile, "NamedTemporaryFile", disk_full)
    assert env.get_template(PAGE).name == PAGE
    assert cached_files(tmp_path) == []


def test_a_folder_of_another_user_is_not_used(fresh_environment, tmp_path, monkeypatch):
    # compiled templates are code: a cache folder someone else owns is never read from
    import os

    if not hasattr(os, "getuid"):
        pytest.skip("no user ids on this platform")
    monkeypatch.setattr(os, "getuid", lambda: os.stat(tmp_path).st_uid + 1)
    env = fresh_environment()
    assert env.bytecode_cache is None
    assert env.get_template(PAGE).name == PAGE
