"""Every wheel ftsweep needs beyond torch, for an offline (air-gapped) GPU machine.

    python scripts/wheelhouse.py --python 3.12 --platform manylinux_2_28_x86_64 \\
        --cuda 13.0 --out wheelhouse          # or: make wheelhouse PYTHON=3.12 ...
    # on the GPU machine, whose own torch stays:
    pip install --no-index --find-links wheelhouse ftsweep bitsandbytes deepspeed

GPU clusters come with their own torch (and CUDA libraries), so torch, triton and the
nvidia-* / cuda-* wheels are never fetched. Everything else that ftsweep and its GPU
options (bitsandbytes, deepspeed) need is walked from each wheel's own Requires-Dist,
with markers evaluated for the *target* Python and platform, and fetched with
`pip download --no-deps` for that target. Packages that ship only as source are built
into pure-Python wheels here (deepspeed with DS_BUILD_OPS=0: its CUDA ops are compiled
on first use on the GPU machine, which needs nvcc and ninja there). bitsandbytes ships
one library per CUDA version; with --cuda, only the one matching the target's torch
(and the CPU one) is kept, which takes the wheel from ~43 MB to a few.

--exclude-from FILE skips what the target already has: the output of
`python -m pip list --format=freeze` there (a name alone is trusted; name==version is
skipped only when that version satisfies every requirement on it).
"""

from __future__ import annotations

import argparse
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# The target's own: its torch build and the CUDA runtime wheels that come with it.
ALWAYS_EXCLUDED = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*|pytorch-triton.*)$")
GPU_EXTRAS = ("bitsandbytes", "deepspeed")
# Packages built here from their sdist, with this build environment (their wheels on
# the index, if any, are stale).
SOURCE_BUILD_ENV = {"deepspeed": {"DS_BUILD_OPS": "0"}}
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


@dataclass
class Fetched:
    version: Version
    path: Path
    requires: list[str]  # Requires-Dist lines of its METADATA


def platform_tags(platform: str) -> list[str]:
    """A manylinux_2_N tag and every older one it runs (pip matches tags exactly)."""
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", platform)
    if not m:
        return [platform]
    major, minor, arch = int(m[1]), int(m[2]), m[3]
    tags = [f"manylinux_{major}_{k}_{arch}" for k in range(minor, 4, -1)]
    tags += [f"{name}_{arch}" for name, (_, k) in LEGACY_MANYLINUX.items() if k <= minor]
    return tags


def marker_env(python: str, platform: str) -> dict[str, str]:
    """The PEP 508 environment of the target, for evaluating Requires-Dist markers."""
    machine = "aarch64" if "aarch64" in platform else "x86_64"
    full = python if python.count(".") == 2 else f"{python}.0"
    return {
        "python_version": ".".join(python.split(".")[:2]),
        "python_full_version": full,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "implementation_version": full,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


def read_excludes(path: Path | None) -> dict[str, Version | None]:
    """name → version (None when only the name is known) from a `pip list` freeze."""
    out: dict[str, Version | None] = {}
    if path is None:
        return out
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        out[canonicalize_name(name)] = Version(version.split("+")[0]) if version else None
    return out


@dataclass
class Walk:
    """The dependency closure of ``roots`` for one target, fetched one wheel at a time."""

    fetch: Callable[[str, SpecifierSet], Fetched]
    env: dict[str, str]
    present: dict[str, Version | None] = field(default_factory=dict)
    specs: dict[str, SpecifierSet] = field(default_factory=dict)
    chosen: dict[str, Fetched] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # name → why

    def run(self, roots: list[str]) -> None:
        todo = [self._add(Requirement(r)) for r in roots]
        rounds = 0
        while todo:
            rounds += 1
            if rounds > 10_000:
                raise RuntimeError("dependency walk does not settle: conflicting requirements")
            name = todo.pop()
            if name is None or self._satisfied(name):
                continue
            got = self.fetch(name, self.specs[name])
            if got.version not in self.specs[name]:
                raise RuntimeError(f"{name}: fetched {got.version}, needs {self.specs[name]}")
            self.chosen[name] = got
            for line in got.requires:
                req = Requirement(line)
                if req.marker is None or req.marker.evaluate(self.env):
                    todo.append(self._add(req))

    def _add(self, req: Requirement) -> str | None:
        name = canonicalize_name(req.name)
        if ALWAYS_EXCLUDED.match(name):
            self.skipped[name] = "the target's own (torch and its CUDA libraries)"
            return None
        self.specs[name] = self.specs.get(name, SpecifierSet()) & req.specifier
        return name

    def _satisfied(self, name: str) -> bool:
        spec = self.specs[name]
        if name in self.present:
            have = self.present[name]
            if have is None or have in spec:
                self.skipped[name] = "already on the target"
                self.chosen.pop(name, None)
                return True
        got = self.chosen.get(name)
        return got is not None and got.version in spec


def pip_fetch(out: Path, python: str, tags: list[str]) -> Callable[[str, SpecifierSet], Fetched]:
    """Fetch one wheel for the target with pip; build it here when only source exists."""

    def fetch(name: str, spec: SpecifierSet) -> Fetched:
        with tempfile.TemporaryDirectory() as tmp:
            target = [
                "--python-version",
                python,
                "--implementation",
                "cp",
                *[a for t in tags for a in ("--platform", t)],
            ]
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                *target,
                "-d",
                tmp,
                f"{name}{spec}",
            ]
            # A source-first package's newest wheel on the index can be years old.
            if (
                name in SOURCE_BUILD_ENV
                or subprocess.run(cmd, capture_output=True, text=True).returncode != 0
            ):
                build_from_source(name, spec, Path(tmp))
            (wheel,) = Path(tmp).glob("*.whl")
            dest = out / wheel.name
            shutil.move(wheel, dest)
        meta = wheel_metadata(dest)
        return Fetched(Version(meta["Version"]), dest, meta.get_all("Requires-Dist") or [])

    return fetch


def build_from_source(name: str, spec: SpecifierSet, tmp: Path) -> None:
    """Download the sdist and build a wheel; only a pure-Python one can travel."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary=:all:",
            "-d",
            str(tmp),
            f"{name}{spec}",
        ],
        check=True,
    )
    (sdist,) = [p for p in tmp.iterdir() if not p.name.endswith(".whl")]
    env = {**os.environ, **SOURCE_BUILD_ENV.get(name, {})}
    # deepspeed's setup.py imports torch: build against this environment's torch.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp),
            str(sdist),
        ],
        check=True,
        env=env,
    )
    sdist.unlink()
    (wheel,) = tmp.glob("*.whl")
    if not wheel.name.endswith("-none-any.whl"):
        raise RuntimeError(
            f"{wheel.name} was built for this machine only; build it on the target instead"
        )


def wheel_metadata(path: Path) -> email.message.Message:
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode("utf-8"))


def slim_bitsandbytes(path: Path, cuda: str) -> int:
    """Drop the CUDA/ROCm libraries the target's torch does not load; returns bytes saved.

    bitsandbytes picks ``libbitsandbytes_cuda{major}{minor}.so`` from torch.version.cuda.
    """
    keep = f"libbitsandbytes_cuda{cuda.replace('.', '')}.so"
    pattern = re.compile(r"libbitsandbytes_(cuda|rocm)\d+\.so$")
    before = path.stat().st_size
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        names = src.namelist()
        if not any(n.endswith(keep) for n in names):
            raise RuntimeError(f"{path.name} has no {keep}: pick a bitsandbytes for CUDA {cuda}")
        dropped = {n for n in names if pattern.search(n) and not n.endswith(keep)}
        for info in src.infolist():
            if info.filename in dropped:
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(ln for ln in lines if ln.split(",")[0] not in dropped).encode()
            dst.writestr(info, data)
    tmp.replace(path)
    return before - path.stat().st_size


def roots(extras: bool) -> list[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [*deps, *(GPU_EXTRAS if extras else ())]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", required=True, help="target Python, e.g. 3.12")
    ap.add_argument("--platform", required=True, help="e.g. manylinux_2_28_x86_64")
    ap.add_argument("--cuda", help="the target torch's CUDA (torch.version.cuda), e.g. 13.0")
    ap.add_argument("--out", type=Path, default=Path("wheelhouse"))
    ap.add_argument("--exclude-from", type=Path, help="`pip list --format=freeze` of the target")
    ap.add_argument("--no-gpu-extras", action="store_true", help="skip bitsandbytes, deepspeed")
    ap.add_argument("--no-self", action="store_true", help="skip the ftsweep wheel itself")
    ap.add_argument("--max-mb", type=float, help="fail when the folder is larger")
    a = ap.parse_args(argv)

    a.out.mkdir(parents=True, exist_ok=True)
    fetch = pip_fetch(a.out, a.python, platform_tags(a.platform))
    fetched: list[Path] = []

    def recording_fetch(name: str, spec: SpecifierSet) -> Fetched:
        got = fetch(name, spec)
        fetched.append(got.path)
        return got

    walk = Walk(recording_fetch, marker_env(a.python, a.platform), read_excludes(a.exclude_from))
    walk.run(roots(not a.no_gpu_extras))
    bnb = walk.chosen.get("bitsandbytes")
    if bnb is not None and a.cuda:
        saved = slim_bitsandbytes(bnb.path, a.cuda)
        print(f"bitsandbytes: kept CUDA {a.cuda} only, {saved / 2**20:.1f} MiB less")
    if not a.no_self:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(a.out), str(ROOT)],
            check=True,
        )
    kept = {w.path for w in walk.chosen.values()}
    for stale in set(fetched) - kept:  # replaced during the walk, or found on the target
        stale.unlink(missing_ok=True)
    for name, why in sorted(walk.skipped.items()):
        print(f"skipped {name}: {why}")
    total = 0
    for wheel in sorted(a.out.glob("*.whl")):
        total += wheel.stat().st_size
        print(f"{wheel.stat().st_size / 2**20:8.2f} MiB  {wheel.name}")
    print(f"{total / 2**20:8.2f} MiB  in {a.out}/ ({len(list(a.out.glob('*.whl')))} wheels)")
    if a.max_mb is not None and total > a.max_mb * 2**20:
        print(f"error: over --max-mb {a.max_mb}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
