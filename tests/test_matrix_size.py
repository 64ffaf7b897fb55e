"""A matrix is counted from its axes before it is expanded, and a huge one is refused
(issue 8, item 4: a 1000 × 1000 matrix ran for minutes at 4 GB with no output)."""

from __future__ import annotations

import random
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ftsweep.cli import build_parser, main
from ftsweep.config.load import load_experiment
from ftsweep.errors import ConfigError
from ftsweep.matrix import expand
from ftsweep.matrix_size import count, too_many

AXIS = list(range(1, 1001))


def _big_yaml(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "big.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        experiment: big
        model: {{path: /nonexistent}}
        data: {{train: train.jsonl}}
        seeds: [0, 1]
        matrix:
          method:
            - {{name: lora, r: {AXIS}, alpha: {AXIS}}}
            - full
        """)
        + extra
    )
    return path


def _random_matrix(rng: random.Random) -> dict:
    """Shared and per-method axes, a zip, repeated and YAML-1.1-string values, and
    overlapping excludes and includes: what the count must get exactly right."""
    lrs = [1e-4, 3e-4, 1e-3, "1e-3"]
    m: dict = {
        "method": [
            {"name": "full", "training.lr": rng.sample(lrs, rng.randint(1, 3))},
            {
                "name": "lora",
                "r": rng.choices([4, 8, 16], k=rng.randint(1, 4)),
                "alpha": [8, 16, 32][: rng.randint(1, 3)],
            },
            "base",
        ],
        "training.batch_size": [4, 8][: rng.randint(1, 2)],
    }
    if rng.random() < 0.5:
        m["zip"] = [{"training.warmup_steps": [0, 10], "training.max_steps": [5, 6]}]
    excludes = []
    for _ in range(rng.randint(0, 5)):
        entry: dict = {}
        for key, p, values in (
            ("method", 0.7, ["full", "lora", "base"]),
            ("training.batch_size", 0.5, [4, 8]),
            ("r", 0.4, [4, 8, 16]),
            ("training.lr", 0.3, [1e-3, 0.001, 3e-4]),
            ("training.warmup_steps", 0.2, [0, 10]),
        ):
            if rng.random() < p:
                entry[key] = rng.choice(values)
        if entry:
            excludes.append(entry)
    if excludes:
        m["exclude"] = excludes
    includes = [
        {"method": "lora", "r": 64},
        {"method": "full", "training.lr": 1e-4, "training.batch_size": 4},
        {"method": "lora", "r": 4, "alpha": 8, "training.batch_size": 4},
    ]
    if rng.random() < 0.6:
        m["include"] = rng.choices(includes, k=rng.randint(1, 3))
    return m


def test_the_count_equals_the_expansion_for_many_matrices():
    rng = random.Random(8)
    for _ in range(400):
        matrix = _random_matrix(rng)
        size = count(matrix)
        expanded: dict[str, int] = {}
        for point in expand(matrix).points:
            expanded[point.method] = expanded.get(point.method, 0) + 1
        assert size.exact, matrix
        assert {m: n for m, n in size.points_by_method().items() if n} == expanded, matrix


def test_exclusions_are_subtracted_without_expanding():
    matrix = {
        "method": [{"name": "lora", "r": AXIS, "alpha": AXIS}],
        "exclude": [{"r": r} for r in range(1, 901)] + [{"alpha": 1}, {"r": 950, "alpha": 1}],
    }
    t0 = time.process_time()
    size = count(matrix)
    assert time.process_time() - t0 < 2.0  # CPU seconds (~0.6); the million points take minutes
    assert size.exact and size.runs(1) == 100 * 1000 - 100  # alpha 1 of the 100 r kept
    assert too_many(size, n_seeds=1, limit=100_000) is None
    assert "99,900 runs" in str(too_many(size, n_seeds=1, limit=99_899))


def test_a_thousand_by_thousand_matrix_is_refused_quickly_in_little_memory(tmp_path):
    path = _big_yaml(tmp_path)
    # In a child capped at 1 GiB of address space: before the fix it took 4 GB and minutes.
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({1 << 30}, {1 << 30}))\n"
        "from ftsweep.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "--workspace", str(tmp_path / "ws"), "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    err = " ".join(done.stderr.split())
    assert f"{path}:5: matrix: the matrix has 2,000,002 runs, more than the limit of 10,000" in err
    assert "alpha (1,000 values) × r (1,000 values) = 1,000,000 points" in err
    assert "× 2 seeds" in err and "--max-runs" in err
    # In this process, in CPU seconds (steady on a busy machine): counting, not expanding.
    t0, rss0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError):
        load_experiment(path)
    assert time.process_time() - t0 < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 100 * 1024  # KiB


def test_launch_refuses_it_and_writes_nothing(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert main(["--workspace", str(ws), "launch", str(_big_yaml(tmp_path))]) == 2
    assert "2,000,002 runs" in capsys.readouterr().err.replace("\n", " ")
    assert not ws.exists()


def test_the_limit_comes_from_the_flag_or_the_file(tmp_path, capsys):
    small = _big_yaml(tmp_path).read_text().replace(f"{AXIS}", "[4, 8, 16]")  # 9 + 1 points
    path = tmp_path / "small.yaml"
    path.write_text(small)
    (tmp_path / "train.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    assert main(["validate", str(path), "--max-runs", "19"]) == 2  # 10 points × 2 seeds
    assert "20 runs, more than the limit of 19" in capsys.readouterr().err.replace("\n", " ")
    assert main(["plan", str(path), "--max-runs", "3", "--workspace", str(tmp_path / "w")]) == 2
    path.write_text(small + "launch: {max_runs: 5}\n")
    with pytest.raises(ConfigError, match="limit of 5"):
        load_experiment(path, deep=False)
    # The flag wins over the file, both ways.
    assert len(load_experiment(path, deep=False, max_runs=20).runs) == 20


def test_max_runs_must_be_a_positive_whole_number(capsys):
    for bad in ("0", "-3", "many"):
        with pytest.raises(SystemExit) as caught:
            build_parser().parse_args(["launch", "x.yaml", "--max-runs", bad])
        assert caught.value.code == 2
        assert "at least 1" in capsys.readouterr().err
