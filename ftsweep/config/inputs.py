"""Checks of a team's own inputs: prompt templates, chat templates, template files.

Called by config/checks.py with the rest of the deep checks; every problem is returned
(never raised), with the record's file:line where one record is to blame.
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Any

from ftsweep.config.schema import ExperimentFile, PromptTemplate
from ftsweep.config.yamlpos import Positions
from ftsweep.errors import Problem, did_you_mean

# Records of the train file a Jinja template is tried on at validation: enough to catch
# a field that some records lack, cheap on any file.
TEMPLATE_PROBE_RECORDS = 200


PARTS = ("prompt", "completion")  # each given inline or as <part>_file


def read_part_file(template: dict[str, Any], part: str, base_dir: Path) -> str:
    """The text of ``<part>_file`` (relative to the experiment file); OSError if unreadable."""
    return (base_dir / str(template[f"{part}_file"])).read_text(encoding="utf-8")


def inline_prompt_files(
    resolved: list[tuple[Any, dict[str, Any]]], base_dir: Path, pos: Positions
) -> list[Problem]:
    """Read ``data.template.prompt_file`` / ``completion_file`` into the run's config.

    The worker then needs no path to them, and their text (not their path) is what the
    run id and the token cache key hash."""
    problems: list[Problem] = []
    texts: dict[str, str] = {}
    for _, cfg in resolved:
        t = cfg["data"].get("template")
        if not isinstance(t, dict):
            continue
        inlined = dict(t)
        for part in PARTS:
            name = t.get(f"{part}_file")
            if not name or t.get(part) is not None:
                continue
            if name not in texts:
                try:
                    texts[name] = read_part_file(t, part, base_dir)
                except OSError as exc:
                    problems.append(
                        pos.problem(
                            ("data", "template", f"{part}_file"),
                            f"cannot read the template file: {exc}",
                            value=name,
                            has_value=True,
                        )
                    )
                    continue
            inlined[part] = texts[name]
        if inlined != t:
            cfg["data"] = {**cfg["data"], "template": inlined}
    return problems


def has_chat_template(model_dir: Path) -> bool:
    """Whether a local model's tokenizer ships a chat template (either place it may be)."""
    if (model_dir / "chat_template.jinja").is_file() or (
        model_dir / "chat_template.json"
    ).is_file():
        return True
    try:
        cfg = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(cfg.get("chat_template")) if isinstance(cfg, dict) else False


def template_checks(
    spec: ExperimentFile, base_dir: Path, model_dir: Path | None, pos: Positions
) -> list[Problem]:
    from ftsweep.data.formats import TEMPLATES

    data, where = spec.data, ("data", "template")
    family, template = data.family, data.template
    problems: list[Problem] = []
    uses_chat = family == "dialogue" or template == "chat"
    if isinstance(template, str):
        valid = {
            "instruction": (*TEMPLATES, "chat"),
            "code": ("auto",),
            "dialogue": ("auto", "chat"),
            "preference": TEMPLATES,  # the prompt in the instruction family's headers
            "unpaired": TEMPLATES,
        }[family]
        if template not in valid:
            problems.append(
                pos.problem(
                    where,
                    f"unknown template for {family} data{did_you_mean(template, valid)}",
                    value=template,
                    has_value=True,
                    valid=", ".join(valid) + " or a {prompt, completion} Jinja mapping",
                )
            )
    elif family == "dialogue":
        problems.append(
            pos.problem(
                where,
                "dialogue data is always rendered by the tokenizer's chat template",
                valid="auto, chat",
            )
        )
    elif family in ("preference", "unpaired"):
        problems.append(
            pos.problem(
                where,
                f"{family} prompts are rendered by a built-in template; Jinja templates "
                "are not supported for them yet",
                valid=", ".join(TEMPLATES),
            )
        )
    else:
        problems += _jinja_checks(spec, template, base_dir, pos)
    if uses_chat and model_dir is not None and not has_chat_template(model_dir):
        problems.append(
            pos.problem(
                where if family != "dialogue" else ("data", "family"),
                f"the tokenizer in {model_dir} has no chat template (no chat_template in "
                "tokenizer_config.json, no chat_template.jinja)",
                value=template if family != "dialogue" else family,
                has_value=True,
                valid="a model whose tokenizer has a chat template, or (instruction "
                "data) a built-in or Jinja template",
            )
        )
    return problems


def _jinja_checks(
    spec: ExperimentFile, template: PromptTemplate, base_dir: Path, pos: Positions
) -> list[Problem]:
    from jinja2 import TemplateSyntaxError

    from ftsweep.data.templates import compile_template

    where = ("data", "template")
    raw = template.model_dump()
    if raw["prompt"] is None and raw["prompt_file"] is None:
        return [pos.problem(where, "give prompt (a Jinja text) or prompt_file")]
    sources: dict[str, str | None] = {}
    problems = []
    for part in PARTS:
        if raw[part] is not None and raw[f"{part}_file"] is not None:
            problems.append(pos.problem(where, f"give {part} or {part}_file, not both"))
        elif raw[f"{part}_file"] is not None:
            try:
                sources[part] = read_part_file(raw, part, base_dir)
            except OSError as exc:
                problems.append(
                    pos.problem(
                        (*where, f"{part}_file"),
                        f"cannot read the template file: {exc}",
                        value=raw[f"{part}_file"],
                        has_value=True,
                    )
                )
        else:
            sources[part] = raw[part]
    for part, text in sources.items():
        if text is None:
            continue
        try:
            compile_template(text)
        except TemplateSyntaxError as exc:
            origin = raw[f"{part}_file"] or part
            problems.append(
                pos.problem(
                    (*where, f"{part}_file" if raw[f"{part}_file"] else part),
                    f"Jinja syntax error at line {exc.lineno} of {origin}: {exc.message}",
                )
            )
    if problems or spec.data.train is None:
        return problems
    return _try_on_records(spec, {**raw, **sources}, base_dir, pos)


def _try_on_records(
    spec: ExperimentFile, template: dict[str, Any], base_dir: Path, pos: Positions
) -> list[Problem]:
    """Render the template on the first train records: a field some lack is found here."""
    from ftsweep.data.fields import apply_fields, missing_fields
    from ftsweep.data.records import _raw_rows
    from ftsweep.data.templates import render_jinja

    train = spec.data.train
    default = spec.data.fields.model_dump() if spec.data.fields else None
    sources = (
        [(s.path, s.fields.model_dump() if s.fields else default) for s in train]
        if isinstance(train, list)
        else [(str(train), default)]
    )
    for rel, fields in sources:
        path = (base_dir / rel).resolve()
        if not path.is_file():
            continue  # the data checks report the missing file
        try:
            rows = _raw_rows(path)
        except Exception:  # noqa: BLE001 - the data checks report an unreadable file
            continue
        for line, rec in islice(rows, TEMPLATE_PROBE_RECORDS):
            if not isinstance(rec, dict) or (
                fields and missing_fields(rec, spec.data.family, fields)
            ):
                continue  # the data checks report a malformed record
            try:
                render_jinja(
                    apply_fields(rec, spec.data.family, fields), template, spec.data.family
                )
            except ValueError as exc:
                return [
                    pos.problem(
                        ("data", "template"),
                        f"{path}:{line}: {exc}",
                        valid="fields every record has (the record's own keys, or "
                        "the family's canonical names)",
                    )
                ]
    return []


def untested_code_checks(spec: ExperimentFile, base_dir: Path, pos: Positions) -> list[Problem]:
    """pass_at_1 asked for on an evaluated split whose code records lack unit tests."""
    from ftsweep.data.fields import apply_fields
    from ftsweep.data.records import _problem, _raw_rows

    evaluators = spec.eval.evaluators
    if spec.data.family != "code" or "pass_at_1" not in evaluators:
        return []
    rel = getattr(spec.data, spec.eval.split, None)
    if not isinstance(rel, str) or not (base_dir / rel).is_file():
        return []  # a holdout or hub split is checked when the run reads it
    path = (base_dir / rel).resolve()
    fields = spec.data.fields.model_dump() if spec.data.fields else None
    try:
        rows = _raw_rows(path)
    except Exception:  # noqa: BLE001 - the data checks report an unreadable file
        return []
    lines = [
        line
        for line, rec in rows
        if _problem(rec, "code", True, fields) is None
        and not apply_fields(rec, "code", fields).get("tests")
    ]
    if not lines:
        return []
    return [
        pos.problem(
            ("eval", "evaluators", evaluators.index("pass_at_1")),
            f"pass_at_1 runs each record's unit tests, and {len(lines)} records of "
            f"{path} have none (first at {path}:{lines[0]}); pass@1 is unavailable for them",
            value="pass_at_1",
            has_value=True,
            valid="code records with tests (a non-empty list of assert lines) on the "
            f"{spec.eval.split} split, or evaluators without pass_at_1 (records "
            "without tests still train)",
        )
    ]


def context_length(model_dir: Path) -> int | None:
    """The model's context (max_position_embeddings, or its other names), if it says."""
    try:
        cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict):
        return None
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(cfg.get(key), int):
            return int(cfg[key])
    text = cfg.get("text_config")
    if isinstance(text, dict) and isinstance(text.get("max_position_embeddings"), int):
        return int(text["max_position_embeddings"])
    return None


def _cuda() -> bool:
    import torch  # only when a setting needs the answer: schema errors stay torch-free

    return bool(torch.cuda.is_available())


def model_load_checks(
    spec: ExperimentFile, configs: list[dict[str, Any]], model_dir: Path | None, pos: Positions
) -> list[Problem]:
    """model.dtype / attn_implementation against this machine, and data.max_length
    against the model's context. ``configs``: the resolved runs (a matrix may vary them)."""
    import importlib.util

    configs = configs or [spec.model_dump(mode="json")]
    problems: list[Problem] = []
    dtypes = {c["model"]["dtype"] for c in configs}
    if "fp16" in dtypes and not _cuda():
        problems.append(
            pos.problem(
                ("model", "dtype"),
                "fp16 weights need a CUDA GPU and none is visible on this machine",
                value="fp16",
                has_value=True,
                valid="auto, fp32, or bf16 (runs on CPU, slowly)",
            )
        )
    for c in configs:
        if c["model"].get("attn_implementation") != "flash_attention_2":
            continue
        why = []
        if not _cuda():
            why.append("a CUDA GPU (none is visible on this machine)")
        if importlib.util.find_spec("flash_attn") is None:
            why.append("the flash-attn package (pip install flash-attn)")
        dtype = c["model"]["dtype"]
        if dtype == "fp32" or (dtype == "auto" and c["training"]["precision"] != "bf16"):
            why.append("bf16 or fp16 weights (set model.dtype: bf16)")
        if why:
            problems.append(
                pos.problem(
                    ("model", "attn_implementation"),
                    f"flash_attention_2 needs {' and '.join(why)}",
                    value="flash_attention_2",
                    has_value=True,
                    valid="sdpa, eager",
                )
            )
        break
    context = context_length(model_dir) if model_dir is not None else None
    longest = max(c["data"]["max_length"] for c in configs)
    if context is not None and longest > context:
        problems.append(
            pos.problem(
                ("data", "max_length"),
                f"longer than the model's context: {model_dir}/config.json says "
                f"max_position_embeddings {context}",
                value=longest,
                has_value=True,
                valid=f"at most {context}",
            )
        )
    return problems


def input_notes(
    spec: ExperimentFile, configs: list[dict[str, Any]], model_dir: Path | None, pos: Positions
) -> list[Problem]:
    """Warnings that do not stop a launch: checks not done, settings that waste a run."""
    notes: list[Problem] = []
    if model_dir is None:
        notes.append(
            pos.problem(
                ("model", "path"),
                f"{spec.model.path!r} is not on this machine (a hub id): its checks run "
                "only when a worker downloads it. Not checked now: that the weights are "
                "safetensors, each method's target modules and parameters, data.max_length "
                "against the model's context, that the tokenizer has a chat template",
            )
        )
    for c in configs or [spec.model_dump(mode="json")]:
        t = c["training"]
        steps, what = _run_steps(c, spec.launch.num_processes)
        if steps is not None and t["warmup_steps"] >= steps:
            notes.append(
                pos.problem(
                    ("training", "warmup_steps"),
                    f"warm-up ({t['warmup_steps']} steps) is not shorter than the run "
                    f"({what}): the learning rate never reaches training.lr",
                    value=t["warmup_steps"],
                    has_value=True,
                    valid=f"fewer than {steps}",
                )
            )
            break
    return notes


def _run_steps(config: dict[str, Any], processes: int) -> tuple[int | None, str]:
    """The run's optimizer steps where the file fixes them: max_steps, or epochs over at
    most data.max_train_samples records (an upper bound); else None."""
    import math

    t = config["training"]
    if t["max_steps"] is not None:
        return t["max_steps"], f"max_steps {t['max_steps']}"
    samples = config["data"]["max_train_samples"]
    if samples is None:
        return None, ""
    per_step = t["batch_size"] * t["grad_accum"] * processes
    steps = math.ceil(math.ceil(samples / per_step) * t["epochs"])
    return steps, f"at most {steps} steps: {t['epochs']:g} epochs of {samples} examples"
