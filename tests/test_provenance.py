"""Provenance names ftsweep's own version and commit, apart from the launch directory's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

import ftsweep
from ftsweep.worker.setup import ftsweep_source, provenance
from tests.conftest import REPO


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_provenance_records_ftsweeps_commit_not_the_launch_directorys(tmp_path, monkeypatch):
    project = tmp_path / "project"  # the user's own repository, where launch runs
    project.mkdir()
    _git(project, "init", "-q")
    _git(
        project,
        "-c",
        "user.name=u",
        "-c",
        "user.email=u@x",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    monkeypatch.chdir(project)
    prov = provenance({"fingerprints": {}}, torch.device("cpu"), 1)
    assert prov["git_commit"] == _git(project, "rev-parse", "HEAD")
    assert prov["ftsweep"]["version"] == ftsweep.__version__
    # this checkout is ftsweep's own: its commit, which is not the project's
    assert prov["ftsweep"]["commit"] == _git(REPO, "rev-parse", "HEAD")
    assert prov["ftsweep"]["commit"] != prov["git_commit"]
    assert isinstance(prov["ftsweep"]["dirty"], bool)


def test_an_installed_copy_inside_another_repository_reports_no_commit(tmp_path):
    outer = tmp_path / "outer"
    (outer / "venv" / "site-packages" / "ftsweep").mkdir(parents=True)
    _git(outer, "init", "-q")
    src = ftsweep_source(outer / "venv" / "site-packages")
    assert src == {"version": ftsweep.__version__, "commit": None, "dirty": None}
    assert ftsweep_source(tmp_path)["commit"] is None  # not a checkout at all
