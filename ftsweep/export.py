"""Rebuild a trained run's model, and export it as a standalone transformers model.

``load_trained(run_dir)`` reads the run's spec (base model path, method and params) and
rebuilds the model with the method's own ``load`` from ``run_dir/artifacts``.
``export(run_dir, out_dir, merge=True)`` writes a directory that plain
``AutoModelForCausalLM.from_pretrained(out_dir)`` loads: safetensors weights, config and
tokenizer. peft weight-delta methods are merged into the base (``merge_and_unload``);
methods that add modules or virtual tokens cannot be, and ``merge=True`` refuses them.
``merge=False`` writes the method's own artefacts (an adapter) plus the tokenizer.
A stage's run (``model.from_run``) is rebuilt on its parent's plain weights
(``plain_model``, recursively), not on the base model.
Both carry the run's ``training_config.json`` (what it was trained with).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftsweep.config.stages import parent_run_dir
from ftsweep.errors import FtsweepError
from ftsweep.methods import METHODS, get_method
from ftsweep.rundir import ARTIFACTS, RunDir, atomic_write_json, read_json

TRAINING_CONFIG = "training_config.json"


def _method_and_params(spec: dict[str, Any]) -> tuple[Any, Any]:
    cfg = spec["config"]["method"]
    method = get_method(cfg["name"])()
    return method, method.Params.model_validate({k: v for k, v in cfg.items() if k != "name"})


def load_trained(run_dir: Path, quantized: bool = True) -> tuple[Any, Any]:
    """(model, tokenizer) of a complete run, in eval mode.

    ``quantized=False`` loads the base without the method's quantization (QLoRA): the
    LoRA weights are full precision, so merging them into an unquantised base is exact.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftsweep.worker.setup import load_dtype

    run = RunDir(Path(run_dir))
    spec = run.spec()
    art = run.file(ARTIFACTS)
    if not art.is_dir():
        raise FtsweepError(f"{run_dir} has no {ARTIFACTS}/ directory: the run is not complete")
    if spec["config"].get("training", {}).get("objective") == "reward":  # a score head, no LM head
        from ftsweep.worker.reward import load_reward_model

        return load_reward_model(run_dir)
    method, params = _method_and_params(spec)
    model_cfg = spec["config"].get("model", {})
    extra = method.load_kwargs(params) if quantized else {}
    # The run's own loading rules: pickled weights only when its file opted in.
    # The dtype the worker trained and evaluated in: a bf16 run's base rebuilt in fp32
    # evaluates to other numbers than the ones recorded.
    precision = spec["config"].get("training", {}).get("precision", "fp32")
    dtype = load_dtype(precision, model_cfg.get("dtype", "auto"))
    attn = model_cfg.get("attn_implementation")
    parent = parent_run_dir(spec, run.path)
    if parent is not None:  # a stage: its base is its parent's trained model
        base = plain_model(parent, dtype, attn)[0]
    else:
        base = AutoModelForCausalLM.from_pretrained(
            spec["paths"]["model"],
            dtype=dtype,
            use_safetensors=None if model_cfg.get("allow_pickle") else True,
            revision=model_cfg.get("revision"),
            trust_remote_code=bool(model_cfg.get("trust_remote_code", False)),
            **({"attn_implementation": attn} if attn else {}),
            **extra,
        )
    model = method.load(base, params, art) if method.trains else base
    tok_dir = art if (art / "tokenizer_config.json").is_file() else spec["paths"]["model"]
    tok = AutoTokenizer.from_pretrained(tok_dir)
    return model.eval(), tok


def plain_model(run_dir: Path, dtype: Any = None, attn: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a complete run as plain transformers weights: what a later
    stage (``model.from_run``) starts from and what ``export(merge=True)`` writes.

    peft adapters are merged (``merge_and_unload``); QLoRA's adapter into a
    full-precision base. ``dtype`` / ``attn``: the child's, when given. Raises
    FtsweepError for a run whose method cannot become plain weights.
    """
    run = RunDir(Path(run_dir))
    method, _ = _method_and_params(run.spec())
    if method.export_as == "adapter":
        raise FtsweepError(
            f"method {method.name!r} adds modules or virtual tokens that cannot be merged "
            f"into the base weights; train one of: {', '.join(mergeable_methods())}"
        )
    model, tok = load_trained(run.path, quantized=False)
    if method.trains and method.export_as == "merged":
        model = model.merge_and_unload()
    if dtype is not None:
        model = model.to(dtype)
    if attn:
        model.set_attn_implementation(attn)
    return model, tok


def mergeable_methods() -> list[str]:
    return sorted(n for n, cls in METHODS.items() if cls.export_as in ("model", "merged"))


def export(run_dir: Path, out_dir: Path, merge: bool) -> Path:
    """Write the run's trained model to ``out_dir`` and return it.

    merge=True: a standalone model (safetensors + tokenizer). Raises FtsweepError for
    methods whose training cannot become plain weights, naming those that can.
    """
    run = RunDir(Path(run_dir))
    spec = run.spec()
    method, _ = _method_and_params(spec)
    if merge and method.export_as == "adapter":
        raise FtsweepError(
            f"method {method.name!r} adds modules or virtual tokens that cannot be merged "
            f"into the base weights; export it with merge=False (adapter + tokenizer), or "
            f"train one of: {', '.join(mergeable_methods())}"
        )
    model, tok = plain_model(run_dir) if merge else load_trained(run_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if merge:
        model.save_pretrained(out_dir, safe_serialization=True)
    elif method.trains:
        method.save(model, out_dir)
    else:
        model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    # The worker's copy when the run has one; runs saved before it did have the spec's.
    saved = run.file(ARTIFACTS) / TRAINING_CONFIG
    atomic_write_json(
        out_dir / TRAINING_CONFIG, read_json(saved) if saved.is_file() else spec["config"]
    )
    return out_dir
