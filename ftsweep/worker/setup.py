"""Worker set-up: determinism, threads, model and tokenizer loading, data, provenance."""

from __future__ import annotations

import math
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ftsweep.data.records import load_split_records
from ftsweep.worker.dataset import Example, encode
from ftsweep.worker.tokcache import TokenCache

PACKAGES = (
    "ftsweep",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "tokenizers",
    "safetensors",
    "duckdb",
    "optuna",
)


def dist_info() -> tuple[int, int]:
    """(rank, world size) from the environment that `accelerate launch` sets."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def configure_threads() -> None:
    n = os.environ.get("FTSWEEP_THREADS")
    if n:
        torch.set_num_threads(int(n))


def load_model_and_tokenizer(
    cfg: dict[str, Any],
    model_path: str,
    extra: dict[str, Any] | None = None,
    *,
    head: str = "causal_lm",
    parent: str | None = None,
) -> tuple[Any, Any]:
    """The run's model and tokenizer: the base model's, or with ``model.from_run`` its
    parent run's (``parent``: that run's directory, the spec's ``paths.parent_run``).
    ``head`` is the objective's (objectives/base.py): "score" loads a one-output
    sequence-classification model (a reward model) instead of the LM head."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    m = cfg["model"]
    if m.get("from_run"):
        if not parent:
            raise ValueError("model.from_run is set but the run's spec has no paths.parent_run")
        model, tok = load_parent(cfg, Path(parent), extra)
        return (as_score_model(model, tok) if head == "score" else model), tok
    common = {"trust_remote_code": m["trust_remote_code"], "revision": m["revision"]}
    tok = AutoTokenizer.from_pretrained(model_path, **common)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # padding positions are masked; any id works
    if m.get("attn_implementation"):
        common["attn_implementation"] = m["attn_implementation"]
    if head == "score":
        common["num_labels"] = 1  # one scalar per sequence; the head starts random
    auto = AutoModelForSequenceClassification if head == "score" else AutoModelForCausalLM
    model = auto.from_pretrained(
        model_path,
        dtype=load_dtype(cfg["training"]["precision"], m.get("dtype", "auto")),
        # True: safetensors or fail. None (opted in): safetensors first, pickle if need be.
        use_safetensors=None if m["allow_pickle"] else True,
        **common,
        **(extra or {}),
    )
    if head == "score":  # the score is read at the last token that is not padding
        model.config.pad_token_id = tok.pad_token_id
    return model, tok


def load_parent(
    cfg: dict[str, Any], parent: Path, extra: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """A stage's starting point: its parent run's trained model as plain weights (a peft
    parent merged), in this run's dtype, and the parent's tokenizer.

    Validation refuses methods with load arguments (QLoRA) as children, and parents that
    cannot become plain weights (config/stages.py); ``extra`` is checked again here.
    """
    from ftsweep.export import plain_model

    if extra:
        raise ValueError(f"a stage's model is built in memory; cannot apply {sorted(extra)}")
    m = cfg["model"]
    model, tok = plain_model(
        parent,
        load_dtype(cfg["training"]["precision"], m.get("dtype", "auto")),
        m.get("attn_implementation"),
    )
    for p in model.parameters():  # as from_pretrained leaves them; the method decides
        p.requires_grad_(True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.train(), tok


def as_score_model(model: Any, tok: Any) -> Any:
    """A one-output sequence-classification model on ``model``'s trunk (a reward model
    started from a stage's parent): its weights but the LM head, and a new score head,
    as ``from_pretrained(num_labels=1)`` builds it from a directory."""
    import copy

    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(model.config)
    config.num_labels = 1
    config.pad_token_id = tok.pad_token_id  # the score is read at the last real token
    scored = AutoModelForSequenceClassification.from_config(config, dtype=model.dtype)
    missing, _ = scored.load_state_dict(model.state_dict(), strict=False)
    if any(not k.startswith("score.") for k in missing):
        raise ValueError(f"the parent's weights do not fill the score model: {missing[:5]}")
    return scored.train()


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def load_dtype(precision: str, dtype: str = "auto") -> torch.dtype:
    """The dtype a run's base weights are loaded in (and rebuilt in, to evaluate it again).

    ``model.dtype`` when set; with auto, bf16 runs hold their weights in bf16 and fp16
    runs keep fp32 weights and compute in fp16 under the Trainer's loss scaler.
    """
    if dtype != "auto":
        return DTYPES[dtype]
    return torch.bfloat16 if precision == "bf16" else torch.float32


def load_split(
    cfg: dict[str, Any],
    paths: dict[str, str],
    split: str,
    tok: Any,
    limit: int | None,
    cache: TokenCache | None = None,
) -> tuple[list[Example], dict[str, int]]:
    """Encoded examples of one split, and the record counts (kept, dropped by reason).

    With a ``cache`` (worker/tokcache.py), an earlier run's encoding of the same inputs
    is read instead of encoding again."""

    def build() -> tuple[list[Example], dict[str, int]]:
        d = cfg["data"]
        records, counts = load_split_records(d, paths, split)
        records = records[:limit] if limit else records
        return [encode(r, i, split, d, tok) for i, r in enumerate(records)], counts

    return cache.get_or_build(split, limit, build) if cache else build()


def count_params(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters, quantised ones counted at their unquantised size."""
    trainable = sum(param_count(p) for p in model.parameters() if p.requires_grad)
    total = sum(param_count(p) for p in model.parameters())
    return trainable, total


def param_count(p: Any) -> int:
    """How many weights a parameter stands for.

    bitsandbytes' 4-bit ``Params4bit`` stores two weights per uint8 element, so its
    ``numel()`` is half the layer's size: counted as is, QLoRA's base shrinks and its
    trainable share looks larger than LoRA's for the same adapter. The quant_state keeps
    the original shape; without one (not yet quantised, its data is still the float
    weight) the element count is right. 8-bit ``Int8Params`` keep one weight per element.
    """
    if type(p).__name__ != "Params4bit":
        return int(p.numel())
    shape = getattr(getattr(p, "quant_state", None), "shape", None)
    if shape is not None:
        return int(math.prod(shape))
    return int(p.numel()) * 2 if p.dtype == torch.uint8 else int(p.numel())


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _git(args: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, check=True, cwd=cwd
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def ftsweep_source(root: Path | None = None) -> dict[str, Any]:
    """ftsweep's own version, and its commit when it runs from a git checkout (else None).

    ``root`` is the directory holding the ``ftsweep`` package (default: this one). The
    checkout must be ftsweep's own: an installed copy inside some other repository (a
    venv in a project tree) reports no commit rather than that repository's. ``dirty``:
    uncommitted changes under ``ftsweep/``.
    """
    import ftsweep

    root = (root or Path(ftsweep.__file__).parent.parent).resolve()
    top = _git(["rev-parse", "--show-toplevel"], cwd=root)
    own = top is not None and Path(top).resolve() == root
    status = _git(["status", "--porcelain", "--", "ftsweep"], cwd=root) if own else None
    return {
        "version": ftsweep.__version__,
        "commit": _git(["rev-parse", "HEAD"], cwd=root) if own else None,
        "dirty": bool(status) if status is not None else None,
    }


def provenance(spec: dict[str, Any], device: torch.device, world: int) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    status = _git(["status", "--porcelain"])
    return {
        "packages": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "world_size": world,
        "threads": torch.get_num_threads(),
        # the launch directory's repository (the user's project), and ftsweep's own
        "git_commit": _git(["rev-parse", "HEAD"]),
        "git_dirty": bool(status) if status is not None else None,
        "ftsweep": ftsweep_source(),
        "fingerprints": spec["fingerprints"],
        # a stage's parent run (model.from_run): {experiment, select, run_id}, else None
        "parent_run": ((spec.get("config") or {}).get("model") or {}).get("from_run"),
        "cwd": os.getcwd(),
    }


def dir_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
