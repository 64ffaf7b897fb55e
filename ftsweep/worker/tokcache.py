"""A tokenisation cache shared by every run of a workspace.

The runs of a sweep differ in method and hyperparameters, rarely in data: each one
would otherwise read, clean and tokenise the same split again (about 3 s for the
shipped train split on the 2-core machine, a large share of a short run's fixed cost).
The encoded examples of a split are kept in ``<workspace>/cache/tokens/<key>.json``.

The key is a hash of everything the encoded examples depend on, so a hit is always
what encoding would have produced:

* the content fingerprints of the data files and of the model directory (which holds
  the tokenizer's files), never their paths;
* the whole ``data`` block (template, field handling, max length, truncation side,
  cleaning, holdout, loss mask...) and the model's loading options;
* the split and the example limit;
* the versions of transformers and tokenizers, and a hash of the source of the modules
  that read and encode records (a code change is a new key, never a stale hit).

Inputs without a content fingerprint (a hub data set or model without a pinned
revision) are never cached. The file is JSON (no pickle), written to a temporary file
and renamed, so concurrent runs that build the same entry each write a whole file and
a reader never sees half of one. A damaged or unreadable entry is rebuilt; the cache
can never fail a run. Deleting the folder at any time is safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ftsweep.fingerprint import content_hash, path_free
from ftsweep.rundir import RunDir
from ftsweep.worker.dataset import Example

log = logging.getLogger(__name__)

FORMAT = 1
DISABLE_ENV = "FTSWEEP_NO_TOKEN_CACHE"
Built = tuple[list[Example], dict[str, int]]


def _code_hash() -> str:
    from ftsweep.data import clean, fields, formats, records, templates
    from ftsweep.worker import dataset

    h = hashlib.sha256()
    for module in (clean, fields, formats, records, templates, dataset):
        h.update(Path(module.__file__ or "").read_bytes())
    return h.hexdigest()[:16]


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def pinned(fingerprint: str) -> bool:
    """Whether an input's fingerprint names fixed content (a hash or a pinned revision)."""
    return fingerprint.startswith("sha256:") or (
        fingerprint.startswith("hub:") and not fingerprint.endswith("@main")
    )


def cache_root(run: RunDir) -> Path | None:
    """``<workspace>/cache/tokens`` for a run directory laid out as ``runs/<exp>/<id>``."""
    runs = run.path.parent.parent
    return runs.parent / "cache" / "tokens" if runs.name == "runs" else None


@dataclass(frozen=True)
class TokenCache:
    root: Path
    base: dict[str, Any]  # what every entry's key shares: inputs, settings, versions

    @classmethod
    def for_run(
        cls, run: RunDir, cfg: dict[str, Any], fingerprints: dict[str, str]
    ) -> TokenCache | None:
        """The cache for this run's encodings, or None where caching would be unsafe."""
        root = cache_root(run)
        if root is None or os.environ.get(DISABLE_ENV):
            return None
        inputs = {k: v for k, v in fingerprints.items() if k == "model" or k.startswith("data")}
        if not all(pinned(v) for v in inputs.values()):
            return None
        # Files enter the key by content (``inputs``), never by how their path is spelt.
        free = path_free({"model": cfg["model"], "data": cfg["data"]})
        model, data = free["model"], free["data"]
        return cls(
            root,
            {
                "format": FORMAT,
                "code": _code_hash(),
                "inputs": inputs,
                "data": data,
                "model": model,
                "versions": {p: _version(p) for p in ("transformers", "tokenizers")},
            },
        )

    def path(self, split: str, limit: int | None) -> Path:
        return self.root / f"{content_hash({**self.base, 'split': split, 'limit': limit}, 32)}.json"

    def get_or_build(self, split: str, limit: int | None, build: Callable[[], Built]) -> Built:
        path = self.path(split, limit)
        got = _read(path)
        if got is not None:
            return got
        built = build()
        _write(path, built)
        return built


def _read(path: Path) -> Built | None:
    try:
        with path.open(encoding="utf-8") as fh:
            doc = json.load(fh)
        examples = [
            Example(str(i), list(ids), list(labels), str(prompt), str(ref), dict(rec))
            for i, ids, labels, prompt, ref, rec in doc["examples"]
        ]
        return examples, {str(k): int(v) for k, v in doc["counts"].items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("token cache entry %s is unreadable (%s); encoding again", path, exc)
        return None


def _write(path: Path, built: Built) -> None:
    examples, counts = built
    doc = {
        "counts": counts,
        "examples": [
            [e.example_id, e.input_ids, e.labels, e.prompt, e.reference, e.record] for e in examples
        ],
    }
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:  # a record value JSON cannot hold: not cached
        log.info("token cache: not caching %s (%s)", path.name, exc)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:  # a full or read-only disk costs the cache, never the run
        log.warning("token cache: could not write %s (%s)", path, exc)


__all__ = ["DISABLE_ENV", "TokenCache", "cache_root", "pinned"]
