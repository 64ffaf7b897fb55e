"""Workspace paths, name sanitising (invariant 7) and the writer lock (invariant 3)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftsweep.rundir import SPEC, atomic_write_json
from ftsweep.workspace import Workspace, WorkspaceLocked, safe_name


@pytest.mark.parametrize(
    "name", ["../../etc", "a/b", "a\x00b", "..", ".", "", "/abs", "a\\b", ".hidden", "x" * 500]
)
def test_safe_name_is_one_harmless_component(name: str) -> None:
    out = safe_name(name)
    assert out and len(out) <= 100
    assert "/" not in out and "\\" not in out and "\x00" not in out
    assert not out.startswith(".")
    assert Path(out).name == out and Path(out).parts == (out,)


def test_safe_name_keeps_safe_names_and_separates_unsafe_ones() -> None:
    assert safe_name("grid-lora_r16.v2") == "grid-lora_r16.v2"
    assert safe_name("a/b") != safe_name("a:b")
    assert safe_name("a/b") == safe_name("a/b")


def test_run_dir_stays_inside_runs_dir(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    for bad in ("../../etc", "a/b", "a\x00b", ".."):
        rd = ws.run_dir(bad, "r1")
        assert rd.path.resolve().parent.parent == ws.runs_dir.resolve()


def test_paths(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    assert ws.runs_dir == tmp_path / "ws" / "runs"
    assert ws.store_path == tmp_path / "ws" / "store.duckdb"
    assert ws.snapshot_path == tmp_path / "ws" / "store.snapshot.duckdb"
    assert Workspace().root == Path(".ftsweep")


def test_iter_run_dirs_only_dirs_with_spec(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    for exp, rid in [("e1", "b"), ("e1", "a"), ("e2", "c")]:
        rd = ws.run_dir(exp, rid)
        rd.path.mkdir(parents=True)
        atomic_write_json(rd.file(SPEC), {"run_id": rid})
    ws.run_dir("e1", "nospec").path.mkdir()
    assert [r.run_id for r in ws.iter_run_dirs()] == ["a", "b", "c"]
    assert [r.run_id for r in ws.iter_run_dirs("e2")] == ["c"]
    assert list(ws.iter_run_dirs("missing")) == []


def test_lock_is_exclusive_within_process(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    with ws.lock():
        assert ws.holds_lock()
        assert ws.try_lock() is None
        with pytest.raises(WorkspaceLocked):
            with ws.lock():
                pass
    assert not ws.holds_lock()
    handle = ws.try_lock()
    assert handle is not None
    handle.release()
    handle.release()  # idempotent


def _hold_lock_in_child(root: Path) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""
        import sys, time
        from ftsweep.workspace import Workspace
        with Workspace({str(root)!r}).lock():
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    return child


def test_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    child = _hold_lock_in_child(tmp_path)
    try:
        assert ws.try_lock() is None
        assert ws.lock_holder_pid() == child.pid
        with pytest.raises(WorkspaceLocked, match=str(child.pid)):
            with ws.lock():
                pass
    finally:
        child.communicate("\n", timeout=30)
    with ws.lock():  # released when the holder exits
        assert ws.lock_holder_pid() is not None
