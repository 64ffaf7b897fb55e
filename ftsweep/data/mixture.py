"""A training mixture: several sources, each with its own field map and weight.

``data.train`` as a list of ``{path, weight, name, fields}`` (config/schema.py:
DataSource). A source's weight multiplies its size after cleaning: 1 keeps every record
once, 0.25 a seeded quarter, 2.5 every record twice and a seeded half of them once more.
The draw and the final order use ``data.split_seed`` (never the run seed), so every run
of an experiment trains on the same mixture and the token cache can share it. The
mixed records are shuffled with that seed, so ``max_train_samples`` takes a sample of
the mixture rather than the head of the first source.

The count of each source's records in the mixture is returned as ``source:<name>`` in
the split's counts (result.json ``data_counts.train``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any


def source_label(source: dict[str, Any]) -> str:
    """The source's name in counts and fingerprints: its ``name``, else its file's stem."""
    return str(source.get("name") or Path(str(source["path"])).stem)


def path_key(source: dict[str, Any]) -> str:
    """The key of the source's file in a RunSpec's ``paths`` and ``fingerprints``."""
    return f"data.train.{source_label(source)}"


def draw(records: list[dict[str, Any]], weight: float, rng: random.Random) -> list[dict[str, Any]]:
    """``round(len(records) * weight)`` records: whole copies, then a seeded sample."""
    n = round(len(records) * weight)
    whole, rest = divmod(n, len(records)) if records else (0, 0)
    return records * whole + rng.sample(records, rest)


def mix(
    per_source: list[tuple[dict[str, Any], list[dict[str, Any]]]], seed: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The mixture of (source, its clean records) pairs, and how many each contributed."""
    out: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for i, (source, records) in enumerate(per_source):
        # One generator per source, seeded by its place and seed: changing one source's
        # weight does not change which records the others contribute.
        rng = random.Random(f"{seed}:{i}:{source_label(source)}")
        drawn = draw(records, float(source.get("weight", 1.0)), rng)
        counts[f"source:{source_label(source)}"] = len(drawn)
        out += drawn
    random.Random(seed).shuffle(out)
    return out, counts
