"""Content fingerprints of data files and base models: part of every run_id (invariant 1)."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

# Files above this size are fingerprinted by size + head + tail: hashing tens of GB of
# weights on every `plan` would make planning slower than a short training run.
FULL_HASH_LIMIT = 256 * 1024 * 1024
_CHUNK = 4 * 1024 * 1024


def file_fingerprint(path: Path) -> str:
    st = path.stat()
    return _file_fingerprint(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=1024)
def _file_fingerprint(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(f"size={size}".encode())
            h.update(fh.read(_CHUNK))
            fh.seek(size - _CHUNK)
            h.update(fh.read(_CHUNK))
    return "sha256:" + h.hexdigest()[:32]


def dir_fingerprint(path: Path) -> str:
    """Fingerprint of every regular file under ``path`` (names and contents)."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(str(f.relative_to(path)).encode())
        h.update(file_fingerprint(f).encode())
    return "sha256:" + h.hexdigest()[:32]


def model_fingerprint(local_path: Path | None, hub_id: str, revision: str | None) -> str:
    if local_path is not None:
        return dir_fingerprint(local_path)
    # A hub model is pinned by name and revision; without a revision it can change upstream.
    return f"hub:{hub_id}@{revision or 'main'}"


def content_hash(obj: Any, length: int = 12) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


SPLIT_FILES = ("train", "eval", "test")  # data block keys that hold file paths
# training keys holding one objective's parameters: only the chosen objective's is hashed
# (the schema refuses another's that is set), none while it is sft
OBJECTIVE_BLOCKS = ("dpo", "orpo", "kto", "reward", "grpo")


def path_free(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the spelling of any local path: what run ids and cache keys hash.

    The files a path names enter by their content fingerprints instead (a RunSpec's
    ``fingerprints``), so the same files reached by a relative path, an absolute one or
    through a symlink give the same run. Removed: ``model.path`` (its fingerprint is the
    directory's content, or ``hub:<id>@<revision>`` for a hub model), the data files
    (each mixture source keeps its name, weight and field map), and
    ``data.template.prompt_file`` / ``completion_file`` (their texts were read into
    ``prompt`` / ``completion`` at load time). The field names of the pair families
    (``PAIR_FIELDS``) while they are their defaults: added after field maps existed, they
    would otherwise have changed the id of every run that maps its fields.

    Also removed: ``training.objective`` while it is the default sft, and the parameter
    blocks of the objectives a run does not train (all of them under sft), so the runs of
    files written before an objective existed keep their ids; ``model.from_run`` when it
    is None (the same reason), and otherwise all of it but the parent's ``run_id``
    (config/stages.py).
    """
    out = dict(config)
    training = out.get("training")
    if isinstance(training, dict):
        objective = training.get("objective", "sft")
        out["training"] = {
            k: v
            for k, v in training.items()
            if not (k == "objective" and objective == "sft")
            and not (k in OBJECTIVE_BLOCKS and k != objective)
        }
    if isinstance(out.get("model"), dict):
        out["model"] = _model_part(out["model"])
    data = out.get("data")
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in SPLIT_FILES}
        train = config["data"].get("train")
        if isinstance(train, list):
            data["train"] = [
                _fields_part({k: v for k, v in s.items() if k != "path"}) for s in train
            ]
        data = _fields_part(data)
        template = data.get("template")
        if isinstance(template, dict):
            data["template"] = {
                k: v for k, v in template.items() if k not in ("prompt_file", "completion_file")
            }
        out["data"] = data
    return out


# data.fields keys added with the preference and unpaired families (config/data_schema.py)
PAIR_FIELDS = ("prompt", "chosen", "rejected", "completion", "label")


def _fields_part(block: dict[str, Any]) -> dict[str, Any]:
    """``block`` (data, or a mixture source) with its field map's pair names dropped
    where they are the defaults (each key's own name)."""
    fields = block.get("fields")
    if not isinstance(fields, dict):
        return block
    kept = {k: v for k, v in fields.items() if not (k in PAIR_FIELDS and v == k)}
    return {**block, "fields": kept}


def _model_part(model: dict[str, Any]) -> dict[str, Any]:
    """The model block as hashed: no path; a stage's parent by its run id alone.

    The parent's run id already hashes its experiment and whole config, so the file it
    was named by and whether it was chosen as ``best`` or by id say nothing more: a child
    selecting its parent either way is the same run.
    """
    out = {k: v for k, v in model.items() if k not in ("path", "from_run")}
    from_run = model.get("from_run")
    if from_run is not None:
        if not from_run.get("run_id"):
            raise ValueError("model.from_run has no parent run_id: a stage is hashed once bound")
        out["from_run"] = {"run_id": from_run["run_id"]}
    return out
