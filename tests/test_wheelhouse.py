"""scripts/wheelhouse.py: the offline wheel folder for a GPU machine (no network here)."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.conftest import REPO


def _load():
    spec = importlib.util.spec_from_file_location("wheelhouse", REPO / "scripts" / "wheelhouse.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["wheelhouse"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


wh = _load()


def test_platform_tags_cover_every_older_manylinux() -> None:
    tags = wh.platform_tags("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_29_x86_64" not in tags
    assert wh.platform_tags("macosx_14_0_arm64") == ["macosx_14_0_arm64"]


def test_markers_are_evaluated_for_the_target_not_this_machine() -> None:
    from packaging.markers import Marker

    env = wh.marker_env("3.12", "manylinux_2_28_aarch64")
    assert Marker('python_version < "3.13"').evaluate(env)
    assert not Marker('python_version < "3.12"').evaluate(env)
    assert Marker('platform_machine == "aarch64"').evaluate(env)
    assert not Marker('extra == "dev"').evaluate(env)


# A fake index: name → {version: Requires-Dist lines}.
INDEX = {
    "app": {
        "1.0": [
            "mid",
            "torch>=2",
            "nvidia-cublas",
            'old; python_version < "3.9"',
            'devtool; extra == "dev"',
            "lib",
        ]
    },
    "mid": {"1.0": ["other>=1"]},
    "lib": {"1.9": ["leaf"], "2.0": ["leaf>=2"]},
    "other": {"1.0": ["lib<2"]},
    "leaf": {"1.0": [], "2.0": []},
}


def fake_fetch(tmp: Path, calls: list[str]):
    def fetch(name: str, spec: SpecifierSet):
        version = max((v for v in INDEX[name] if Version(v) in spec), key=Version)
        calls.append(f"{name}=={version}")
        path = tmp / f"{name}-{version}-py3-none-any.whl"
        path.write_bytes(b"")
        return wh.Fetched(Version(version), path, INDEX[name][version])

    return fetch


def test_walk_follows_requirements_for_the_target_and_settles_conflicts(tmp_path: Path) -> None:
    calls: list[str] = []
    walk = wh.Walk(fake_fetch(tmp_path, calls), wh.marker_env("3.12", "manylinux_2_28_x86_64"))
    walk.run(["app"])
    chosen = {n: str(f.version) for n, f in walk.chosen.items()}
    # lib 2.0 is fetched first; other's lib<2, found deeper, forces 1.9 after it
    assert {k: chosen[k] for k in ("app", "mid", "lib", "other")} == {
        "app": "1.0",
        "mid": "1.0",
        "lib": "1.9",
        "other": "1.0",
    }
    assert "leaf" in chosen and calls.count("lib==2.0") == 1 and "lib==1.9" in calls
    assert "torch" in walk.skipped and "nvidia-cublas" in walk.skipped
    assert not {"old", "devtool"} & set(chosen) and "old" not in walk.skipped
    for name, fetched in walk.chosen.items():  # every requirement seen is met
        assert fetched.version in walk.specs[name]


def test_what_the_target_has_is_skipped_unless_its_version_is_wrong(tmp_path: Path) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("# the target\nother\nleaf==1.0\n")
    present = wh.read_excludes(freeze)
    assert present == {"other": None, "leaf": Version("1.0")}
    walk = wh.Walk(fake_fetch(tmp_path, []), wh.marker_env("3.12", "x"), present)
    walk.run(["app"])
    assert "other" not in walk.chosen and walk.skipped["other"] == "already on the target"
    # lib 2.0 needs leaf>=2, which the target's leaf 1.0 does not meet: it is fetched
    assert str(walk.chosen["lib"].version) == "2.0" and str(walk.chosen["leaf"].version) == "2.0"


def _wheel(path: Path, names: list[str]) -> None:
    record = "".join(f"{n},sha256=x,1\n" for n in names)
    with zipfile.ZipFile(path, "w") as zf:
        for n in names:
            zf.writestr(n, b"\0" * 1000)
        zf.writestr("bitsandbytes-0.50.2.dist-info/RECORD", record)


def test_bitsandbytes_keeps_only_the_targets_cuda_library(tmp_path: Path) -> None:
    libs = [f"bitsandbytes/libbitsandbytes_{x}.so" for x in ("cuda128", "cuda130", "rocm71", "cpu")]
    path = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    _wheel(path, ["bitsandbytes/__init__.py", *libs])
    assert wh.slim_bitsandbytes(path, "13.0") > 0
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        record = zf.read("bitsandbytes-0.50.2.dist-info/RECORD").decode()
    assert names == {
        "bitsandbytes/__init__.py",
        "bitsandbytes/libbitsandbytes_cuda130.so",
        "bitsandbytes/libbitsandbytes_cpu.so",
        "bitsandbytes-0.50.2.dist-info/RECORD",
    }
    assert "cuda128" not in record and "rocm71" not in record and "cuda130" in record
    with pytest.raises(RuntimeError, match="no libbitsandbytes_cuda118.so"):
        wh.slim_bitsandbytes(path, "11.8")


def test_roots_are_ftsweeps_dependencies_and_the_gpu_extras() -> None:
    roots = wh.roots(extras=True)
    assert any(r.startswith("duckdb") for r in roots) and any(r.startswith("optuna") for r in roots)
    assert {"bitsandbytes", "deepspeed"} <= set(roots)
    assert "deepspeed" in wh.SOURCE_BUILD_ENV  # its index wheels are stale: built from source
