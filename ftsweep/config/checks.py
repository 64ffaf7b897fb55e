"""Deep checks, run before anything trains: files, model, evaluators, methods, hardware."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ftsweep.config.schema import ExperimentFile
from ftsweep.config.yamlpos import Positions
from ftsweep.errors import Problem, did_you_mean
from ftsweep.methods import get_method
from ftsweep.methods.base import ModelInfo

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_model_path(path: str, base_dir: Path) -> Path | None:
    """The local directory for ``model.path``, or None when it names a hub model."""
    for candidate in (base_dir / path, Path(path)):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def deep_checks(
    spec: ExperimentFile, points: list[tuple[Any, dict[str, Any]]], base_dir: Path, pos: Positions
) -> list[Problem]:
    """Checks that need files, the model or the hardware; ``points`` are (Point, config)."""
    from ftsweep.config.inputs import model_load_checks, template_checks, untested_code_checks

    problems: list[Problem] = []
    local = resolve_model_path(spec.model.path, base_dir)
    for variant in _data_eval_variants(spec, points):  # the matrix may vary data/eval keys
        problems += _data_checks(variant, base_dir, pos)
        problems += template_checks(variant, base_dir, local, pos)
        problems += untested_code_checks(variant, base_dir, pos)
        problems += _eval_checks(variant, pos)
        problems += _evaluator_file_checks(variant, base_dir, pos)
    problems += _hardware_checks(spec, [c for _, c in points], base_dir, pos)
    problems += model_load_checks(spec, [c for _, c in points], local, pos)
    problems += _fsdp_checks(spec, points, pos)
    info, model_problems = _model_checks(spec, local, pos)
    problems += model_problems
    if info is not None:
        problems += _method_checks(points, info, pos, spec)
    return problems


def evaluator_files(spec: ExperimentFile) -> list[tuple[str, str]]:
    """("eval.<evaluator>.<name>", path as written) of every file an evaluator reads."""
    if spec.eval.evaluators == ["loss"]:
        return []  # the default: no need to import the evaluator plugins
    from ftsweep import evaluators as ev

    out = []
    for name in spec.eval.evaluators:
        cls = ev.EVALUATORS.get(name)  # an unknown name is reported by the deep checks
        if cls is not None:
            files = cls.input_files(spec.eval.evaluator_params.get(name, {}))
            out += [(f"eval.{name}.{key}", rel) for key, rel in sorted(files.items())]
    return out


def _evaluator_file_checks(spec: ExperimentFile, base_dir: Path, pos: Positions) -> list[Problem]:
    """Every file an evaluator reads (the forgetting probe) must exist."""
    problems = []
    for key, rel in evaluator_files(spec):
        if not (base_dir / rel).is_file():
            _, name, param = key.split(".", 2)
            problems.append(
                pos.problem(
                    ("eval", "evaluator_params", name, param),
                    f"file not found: {(base_dir / rel).resolve()}",
                    value=rel,
                    has_value=True,
                    valid="a path relative to the experiment file",
                )
            )
    return problems


def _data_eval_variants(
    spec: ExperimentFile, points: list[tuple[Any, dict[str, Any]]]
) -> list[ExperimentFile]:
    """The spec once per distinct (data, eval) pair that the points resolve to."""
    from ftsweep.config.schema import DataBlock, EvalBlock

    seen: dict[str, ExperimentFile] = {}
    for _, cfg in points:
        key = json.dumps([cfg["data"], cfg["eval"]], sort_keys=True)
        if key not in seen:
            seen[key] = spec.model_copy(
                update={"data": DataBlock(**cfg["data"]), "eval": EvalBlock(**cfg["eval"])}
            )
    return list(seen.values()) or [spec]


def _data_checks(spec: ExperimentFile, base_dir: Path, pos: Positions) -> list[Problem]:
    from ftsweep.data.records import check_file, has_split

    problems = []
    if not has_split(spec.data.model_dump(), spec.eval.split):
        problems.append(
            pos.problem(
                ("eval", "split"),
                f"evaluates on the {spec.eval.split!r} split, but data."
                f"{spec.eval.split} is not set",
                value=spec.eval.split,
                has_value=True,
                valid="a split that data names",
            )
        )
    for split, key, rel, fields in _data_files(spec):
        path = (base_dir / rel).resolve()
        if not path.is_file():
            problems.append(pos.problem(key, f"file not found: {path}", value=rel, has_value=True))
            continue
        found = check_file(
            path, spec.data.family, spec.data.on_bad_record, split != "train", fields
        )
        for line, reason in found[:5]:
            problems.append(pos.problem(key, f"{path}:{line}: {reason}"))
        if len(found) > 5:
            problems.append(
                pos.problem(key, f"{path}: {len(found) - 5} more malformed records not listed")
            )
        if not found:
            problems += _no_usable_records(spec, split, key, path, fields, pos)
    return problems


def _data_files(spec: ExperimentFile) -> list[tuple[str, tuple, str, dict[str, Any] | None]]:
    """(split, key path, file, field map) of every local data file, mixture sources too."""
    default = spec.data.fields.model_dump() if spec.data.fields else None
    out: list[tuple[str, tuple, str, dict[str, Any] | None]] = []
    for split in ("train", "eval", "test"):
        rel = getattr(spec.data, split)
        if isinstance(rel, list):
            for i, source in enumerate(rel):
                fields = source.fields.model_dump() if source.fields else default
                out.append((split, ("data", split, i, "path"), source.path, fields))
        elif rel is not None:
            out.append((split, ("data", split), rel, default))
    return out


def _no_usable_records(
    spec: ExperimentFile,
    split: str,
    key: tuple,
    path: Path,
    fields: dict[str, Any] | None,
    pos: Positions,
) -> list[Problem]:
    """An empty file, or one whose records the policy and cleaning all drop, fails only
    once runs have started (and left their directories): refuse it here instead."""
    from ftsweep.data.records import BadRecordError, load_split_records

    data = {**spec.data.model_dump(), "fields": fields, "train": str(path)}
    try:
        records, counts = load_split_records(data, {f"data.{split}": str(path)}, split)
    except (BadRecordError, OSError, ValueError, KeyError):
        return []  # check_file reports what cannot be read
    if records:
        return []
    dropped = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if v and k != "kept")
    return [
        pos.problem(
            key,
            f"{path}: no usable records"
            + (f" (dropped: {dropped})" if dropped else " (the file is empty)"),
            value=str(path),
            has_value=True,
            valid=f"a file with at least one {spec.data.family} record",
        )
    ]


def _eval_checks(spec: ExperimentFile, pos: Positions) -> list[Problem]:
    from ftsweep import evaluators as ev

    problems = []
    metrics: set[str] = set()
    for i, name in enumerate(spec.eval.evaluators):
        try:
            cls = ev.get_evaluator(name)
        except KeyError as exc:
            problems.append(
                pos.problem(
                    ("eval", "evaluators", i), str(exc).strip("'\""), value=name, has_value=True
                )
            )
            continue
        metrics |= set(cls.metrics_for(spec.eval.generation.num_samples))
        try:
            ev.build_evaluator(name, spec.eval.evaluator_params.get(name, {}))
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(
                    pos.problem(
                        ("eval", "evaluator_params", name, *err["loc"]),
                        err["msg"],
                        value=err.get("input"),
                        has_value=True,
                    )
                )
    if "pass_at_1" in spec.eval.evaluators and spec.data.family != "code":
        problems.append(
            pos.problem(
                ("eval", "evaluators"),
                "pass_at_1 runs unit tests, which "
                f"only code records have; this is {spec.data.family} data",
                value="pass_at_1",
                has_value=True,
                valid="loss, exact_match, token_f1, bleu, chrf",
            )
        )
    for name in spec.eval.evaluator_params:
        if name not in spec.eval.evaluators:
            problems.append(
                pos.problem(
                    ("eval", "evaluator_params", name),
                    "parameters for an evaluator that is not in eval.evaluators",
                    valid=", ".join(spec.eval.evaluators),
                )
            )
    if metrics and spec.eval.primary_metric not in metrics:
        problems.append(
            pos.problem(
                ("eval", "primary_metric"),
                "no evaluator computes this metric"
                f"{did_you_mean(spec.eval.primary_metric, metrics)}",
                value=spec.eval.primary_metric,
                has_value=True,
                valid=", ".join(sorted(metrics)),
            )
        )
    return problems


def _hardware_checks(
    spec: ExperimentFile, configs: list[dict[str, Any]], base_dir: Path, pos: Positions
) -> list[Problem]:
    import torch

    problems = []
    if not torch.cuda.is_available():
        for prec in sorted({c["training"]["precision"] for c in configs} - {"fp32"}):
            problems.append(
                pos.problem(
                    ("training", "precision"),
                    f"{prec} mixed precision needs a CUDA GPU and none is visible on this machine",
                    value=prec,
                    has_value=True,
                    valid="fp32 on CPU",
                )
            )
        if any(c["training"]["optimizer"] == "adamw_8bit" for c in configs):
            problems.append(
                pos.problem(
                    ("training", "optimizer"),
                    "8-bit AdamW (bitsandbytes) "
                    "needs a CUDA GPU and none is visible on this machine",
                    value="adamw_8bit",
                    has_value=True,
                    valid="adamw, sgd, adafactor",
                )
            )
        strategy = spec.launch.distributed.strategy
        if strategy != "ddp":
            problems.append(
                pos.problem(
                    ("launch", "distributed", "strategy"),
                    f"{strategy} shards a model across GPUs and none is visible on this machine",
                    value=strategy,
                    has_value=True,
                    valid="ddp (gloo on CPU)",
                )
            )
    if spec.launch.distributed.strategy == "deepspeed" and not _importable("deepspeed"):
        problems.append(
            pos.problem(
                ("launch", "distributed", "strategy"),
                "deepspeed is not installed: pip install deepspeed",
                value="deepspeed",
                has_value=True,
            )
        )
    cfg_path = spec.launch.accelerate_config
    if cfg_path and not (base_dir / cfg_path).is_file():
        problems.append(
            pos.problem(
                ("launch", "accelerate_config"), "file not found", value=cfg_path, has_value=True
            )
        )
    return problems


def _fsdp_checks(
    spec: ExperimentFile, points: list[tuple[Any, dict[str, Any]]], pos: Positions
) -> list[Problem]:
    """What FSDP2 (the generated accelerate config) cannot do; each method says for itself."""
    dist = spec.launch.distributed
    if dist.strategy != "fsdp" or spec.launch.accelerate_config:
        return []
    problems = []
    if dist.fsdp_sharding == "NO_SHARD":
        problems.append(
            pos.problem(
                ("launch", "distributed", "fsdp_sharding"),
                "NO_SHARD replicates the model, which is DDP; FSDP2 (fully_shard) has no such mode",
                value="NO_SHARD",
                has_value=True,
                valid="FULL_SHARD, SHARD_GRAD_OP, or launch.distributed.strategy: ddp",
            )
        )
    seen: set[str] = set()
    for point, cfg in points:
        name = cfg["method"]["name"]
        reason = get_method(name).cannot_shard
        if reason and name not in seen:
            seen.add(name)
            problems.append(
                pos.problem(
                    tuple(point.origin) or ("matrix",),
                    f"{name} cannot run under FSDP: {reason}",
                    value=name,
                    has_value=True,
                    valid="launch.distributed.strategy: "
                    "ddp, or a method FSDP can shard (ftsweep methods)",
                )
            )
    return problems


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _model_checks(
    spec: ExperimentFile, local: Path | None, pos: Positions, read_modules: bool = True
) -> tuple[ModelInfo | None, list[Problem]]:
    """The model directory's files; with ``read_modules``, its modules too (imports torch)."""
    where = ("model", "path")
    if local is None:
        if HUB_ID.match(spec.model.path):
            return None, []  # a hub model: its checks run in the worker, which downloads it
        return None, [
            pos.problem(
                where,
                "neither a local model directory nor a hub id ('org/name')",
                value=spec.model.path,
                has_value=True,
            )
        ]
    if not (local / "config.json").is_file():
        return None, [
            pos.problem(where, f"no config.json in {local}", value=spec.model.path, has_value=True)
        ]
    has_st = any(local.glob("*.safetensors"))
    has_pickle = any(local.glob("*.bin")) or any(local.glob("*.pt"))
    if not has_st and not (has_pickle and spec.model.allow_pickle):
        hint = (
            (
                "; pickled weights found: convert them to safetensors, or set "
                "model.allow_pickle: true if you trust their source"
            )
            if has_pickle
            else ""
        )
        return None, [
            pos.problem(
                where,
                f"no .safetensors weights in {local}{hint}",
                value=spec.model.path,
                has_value=True,
            )
        ]
    if not read_modules:
        return None, []
    try:
        return model_info(str(local), spec.model.trust_remote_code), []
    except (OSError, ValueError) as exc:
        return None, [
            pos.problem(
                where, f"cannot read the model config: {exc}", value=spec.model.path, has_value=True
            )
        ]


@lru_cache(maxsize=8)
def model_info(local: str, trust_remote_code: bool) -> ModelInfo:
    """Module names from a meta-device instance: no weights are read or allocated."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(local, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, trust_remote_code=trust_remote_code)
    linear = {
        name.rsplit(".", 1)[-1]
        for name, mod in model.named_modules()
        if isinstance(mod, torch.nn.Linear) and name != "lm_head"
    }
    raw = json.loads((Path(local) / "config.json").read_text())
    return ModelInfo(
        model_type=cfg.model_type,
        num_layers=int(raw.get("num_hidden_layers", 0)),
        hidden_size=int(raw.get("hidden_size", 0)),
        num_attention_heads=int(raw.get("num_attention_heads", 0)),
        linear_module_names=frozenset(linear),
        param_names=frozenset(n for n, _ in model.named_parameters()),
    )


def _method_checks(
    points: list[tuple[Any, dict[str, Any]]], info: ModelInfo, pos: Positions, spec: ExperimentFile
) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    configs = [c for _, c in points]
    if spec.launch.num_processes > 1 and any(c["method"]["name"] == "progressive" for c in configs):
        # DDP/FSDP register gradient sync only for parameters trainable when the model is
        # wrapped; blocks unfrozen later would silently diverge across ranks.
        problems.append(
            pos.problem(
                ("launch", "num_processes"),
                "progressive unfreezing changes which parameters train "
                "during training, which multi-process (DDP/FSDP) training "
                "cannot follow",
                value=spec.launch.num_processes,
                has_value=True,
                valid="1",
            )
        )
    for point, cfg in points:
        key = json.dumps(cfg["method"], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        name = cfg["method"]["name"]
        cls = get_method(name)
        params = cls.Params.model_validate({k: v for k, v in cfg["method"].items() if k != "name"})
        where = tuple(point.origin) or ("matrix",)
        for param, message in cls().check(params, info):
            problems.append(
                pos.problem(
                    where + ((param,) if param else ()),
                    f"{name}: {message}",
                    value=getattr(params, param, None) if param else None,
                    has_value=bool(param),
                )
            )
    return problems
