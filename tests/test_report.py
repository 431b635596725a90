"""The report's provenance: the commit a run came from, read with real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deepprior.report import NOT_A_CHECKOUT, SOURCE_ROOT, source_commit, versions


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_commit_is_read_from_the_checkout_and_marked_when_changed(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "code.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert source_commit(tmp_path) == head
    (tmp_path / "notes.txt").write_text("untracked files do not count\n")
    assert source_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert source_commit(tmp_path) == head + "+dirty"


def test_an_installed_package_says_it_is_not_a_checkout(tmp_path):
    assert source_commit(tmp_path) == NOT_A_CHECKOUT


def test_versions_name_the_cpu_and_this_checkouts_commit():
    recorded = versions()
    assert recorded["cpu"] and recorded["commit"] == source_commit(SOURCE_ROOT)
    if (SOURCE_ROOT / ".git").exists():  # the tests run from a clone
        assert recorded["commit"].startswith(git(SOURCE_ROOT, "rev-parse", "HEAD"))
    else:  # or from an unpacked archive
        assert recorded["commit"] == NOT_A_CHECKOUT
