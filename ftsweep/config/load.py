"""Load an experiment file into validated run specs, collecting every problem at once.

Stages, each adding to one list of problems (STYLE 3): YAML → schema → matrix
expansion → per-run resolution (defaults deep-merged with the point's values, then the
whole config validated again) → deep checks (files, model, evaluators, each method's
own check such as building its peft config). Any problem → ConfigError (exit code 2),
and nothing has been written.

Relative paths in the file resolve against the file's own directory, so an experiment
means the same thing whatever directory ftsweep is started from.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ftsweep.config.checks import deep_checks, evaluator_files, resolve_model_path
from ftsweep.config.inputs import inline_prompt_files
from ftsweep.config.objective import objective_problems
from ftsweep.config.partial import valid_block_checks
from ftsweep.config.schema import DEFAULT_MAX_RUNS, OVERRIDABLE_BLOCKS, ExperimentFile
from ftsweep.config.yamlpos import Positions, load_yaml
from ftsweep.errors import ConfigError, Problem, did_you_mean
from ftsweep.fingerprint import content_hash, file_fingerprint, model_fingerprint, path_free
from ftsweep.matrix import Point, expand, nested_get
from ftsweep.matrix_size import count, too_many
from ftsweep.methods import get_method
from ftsweep.search.checks import probe_points, search_checks
from ftsweep.search.space import parse_space

# Blocks of the resolved config that change what a run computes, hence its run_id; the
# spelling of local paths is left out (fingerprint.path_free): the files enter by content.
# num_machines is in a config only when above 1, so single-node run ids stay as they were.
HASHED_KEYS = (
    "model",
    "data",
    "training",
    "eval",
    "method",
    "seed",
    "num_processes",
    "num_machines",
)
RUN_ID_LENGTH = 12  # content_hash's default length, which __post_init__ uses
_SEED_TOKEN = "\ue000ftsweep seed\ue000"  # a private-use placeholder no config contains


def _json_int(value: Any) -> str:
    return str(value) if type(value) is int else json.dumps(value, default=str)


@dataclass
class RunSpec:
    experiment: str
    method: str
    seed: int
    params: dict[str, Any]  # the values the matrix set for this run (method params + dotted)
    config: dict[str, Any]  # fully resolved: model, data, training, eval, method, seed, ...
    paths: dict[str, str]  # absolute paths of model and data files (not hashed: machine-specific)
    fingerprints: dict[str, str]
    run_id: str = ""
    # A search trial's run: {"study", "number", "prune", "decision_timeout_s"}. Not hashed:
    # the same values give the same run whichever trial (or grid) asks for it.
    trial: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.run_id:
            hashed = path_free({k: self.config[k] for k in HASHED_KEYS if k in self.config})
            self.run_id = content_hash(
                {"experiment": self.experiment, "config": hashed, "fp": self.fingerprints}
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "method": self.method,
            "seed": self.seed,
            "params": self.params,
            "config": self.config,
            "paths": self.paths,
            "fingerprints": self.fingerprints,
            "created_at": time.time(),
            **({"trial": self.trial} if self.trial else {}),
        }

    @classmethod
    def for_seeds(
        cls,
        experiment: str,
        method: str,
        seeds: list[int],
        params: dict[str, Any],
        cfg: dict[str, Any],
        paths: dict[str, str],
        fingerprints: dict[str, str],
    ) -> list[RunSpec]:
        """The RunSpecs of one resolved point, one per seed, without per-run copies.

        Each run gets its own top-level config dict, but the blocks in it (``cfg``'s
        nested dicts), ``params``, ``paths`` and ``fingerprints`` are shared between the
        seeds: treat a RunSpec's contents as read-only. The run_ids are exactly
        ``content_hash`` of each run's identity (what ``__post_init__`` computes): the
        JSON text is rendered once per point with a placeholder for the seed, and the
        seed is spliced in (JSON encoding is compositional, so the text is the same).
        """
        hashed = path_free({k: cfg[k] for k in HASHED_KEYS if k in cfg})
        token = json.dumps(_SEED_TOKEN)
        text = json.dumps(
            {
                "experiment": experiment,
                "config": {**hashed, "seed": _SEED_TOKEN},
                "fp": fingerprints,
            },
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        if text.count(token) != 1:  # the placeholder also occurs in a value: hash each run
            return [
                cls(experiment, method, seed, params, {**cfg, "seed": seed}, paths, fingerprints)
                for seed in seeds
            ]
        head, tail = text.split(token)
        return [
            cls(
                experiment,
                method,
                seed,
                params,
                {**cfg, "seed": seed},
                paths,
                fingerprints,
                run_id=hashlib.sha256(f"{head}{_json_int(seed)}{tail}".encode()).hexdigest()[
                    :RUN_ID_LENGTH
                ],
            )
            for seed in seeds
        ]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        keys = ("experiment", "method", "seed", "params", "config", "paths", "fingerprints")
        return cls(**{k: data[k] for k in keys}, run_id=data["run_id"], trial=data.get("trial"))


@dataclass
class Experiment:
    file: Path
    spec: ExperimentFile
    runs: list[RunSpec] = field(default_factory=list)  # the matrix's runs (none for a search)
    search: Any = None  # ftsweep.search.space.SearchSpace when the file has a search block
    paths: dict[str, str] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    # Warnings of the deep checks (a check that could not run, a wasteful setting).
    notes: list[Problem] = field(default_factory=list)
    # model.from_run (config/stages.py): the parent experiment and the selected run.
    stage: Any = None
    # A stage's resolved points while its parent run is not selected yet (no runs).
    pending: list[tuple[Point, dict[str, Any]]] = field(default_factory=list)

    def build_runs(self) -> None:
        """The runs of the pending points, now that the stage's parent is bound."""
        self.runs = _runs_of(self.spec, self.pending, self.paths, self.fingerprints, self.stage)
        self.pending = []

    def resolve(self, point: Point, seeds: list[int]) -> list[RunSpec]:
        """RunSpecs of one point (a search trial's values) for these seeds.

        The space was checked at load time with probe points at every range end and
        choice, so a problem here is a bug or a value outside them; it raises ConfigError.
        """
        problems: list[Problem] = []
        pos = Positions({}, str(self.file))
        resolved = _resolve_points(self.spec, [point], pos, problems)
        problems += inline_prompt_files(resolved, self.file.resolve().parent, pos)
        if problems or not resolved:
            raise ConfigError(_dedupe(problems))
        _, cfg = resolved[0]
        if self.stage is not None:
            from ftsweep.config.stages import attach

            cfg = attach(cfg, self.stage)
        return [
            RunSpec(
                self.spec.experiment,
                point.method,
                seed,
                _params(point, cfg),
                {**copy.deepcopy(cfg), "seed": seed},
                self.paths,
                self.fingerprints,
            )
            for seed in seeds
        ]


def _pydantic_problems(
    exc: ValidationError, pos: Positions, prefix: tuple = (), model: Any = None
) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        msg = err["msg"]
        valid = ""
        if err["type"] == "extra_forbidden":
            known = _known_keys(model, tuple(err["loc"])[:-1])
            msg = f"unknown key{did_you_mean(str(loc[-1]), known)}"
            valid = ", ".join(sorted(known))
        elif err["type"] == "literal_error":
            valid = err.get("ctx", {}).get("expected", "")
        out.append(
            pos.problem(
                loc, msg, value=err.get("input"), has_value=err["type"] != "missing", valid=valid
            )
        )
    return out


def _known_keys(model: Any, loc: tuple) -> list[str]:
    """Field names of the (nested) pydantic model at ``loc``, for 'did you mean'."""
    for part in loc:
        if model is None or isinstance(part, int):
            return []
        f = model.model_fields.get(part)
        model = f.annotation if f is not None else None
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def load_experiment(
    path: Path,
    *,
    deep: bool = True,
    max_runs: int | None = None,
    _chain: tuple[Path, ...] = (),
) -> Experiment:
    """Parse, validate and expand; raise ConfigError listing every problem.

    ``max_runs`` (default: the file's ``launch.max_runs``) bounds the matrix: it is
    counted before it is expanded, and a larger one is refused. A file with
    ``model.from_run`` loads its parent experiment too (``_chain``: the files that led
    here, to refuse a cycle); its runs exist once the parent run is known
    (config/stages.py ``bind``).
    """
    data, pos = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            [
                pos.problem(
                    (),
                    "an experiment file is a mapping at the top level",
                    value=data,
                    has_value=True,
                )
            ]
        )
    stage: Any = None
    stage_problems: list[Problem] = []
    stage_notes: list[Problem] = []
    model = data.get("model")
    if isinstance(model, dict) and model.get("from_run") is not None:
        from ftsweep.config.stages import load_stage

        stage, stage_problems, stage_notes = load_stage(data, path, pos, deep, _chain)
    too_big = _size_problems(data, max_runs, pos)
    try:
        spec = ExperimentFile.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(exc, pos, model=ExperimentFile) + too_big + stage_problems
        if stage_problems:  # a stage's missing model.path comes from its parent, when it loads
            problems = [p for p in problems if p.path != ("model", "path") or p.has_value]
        if isinstance(data.get("matrix"), dict) and not too_big:  # its problems are independent
            problems += [
                pos.problem(p, m, value=v, has_value=True)
                for p, m, v in expand(data["matrix"]).problems
            ]
        search = data.get("search")
        if isinstance(search, dict) and "space" in search:  # so are the space's
            problems += [
                pos.problem(p, m, value=v, has_value=True)
                for p, m, v in parse_space(search["space"], search.get("sampler") == "grid")[1]
            ]
        if deep and not too_big:  # the valid blocks' data, model and evaluator problems too
            problems += valid_block_checks(data, path.resolve().parent, pos)
        raise ConfigError(_dedupe(problems)) from None
    if too_big:
        raise ConfigError(too_big)
    base_dir = path.resolve().parent
    problems = list(stage_problems)
    points: list[tuple[Point, dict[str, Any]]] = []
    if spec.matrix is not None:
        expansion = expand(spec.matrix)
        problems += [pos.problem(p, m, value=v, has_value=True) for p, m, v in expansion.problems]
        points = _resolve_points(spec, expansion.points, pos, problems)
        if spec.model.from_run is not None:
            problems += _stage_point_problems(points, pos)
    space = None
    probes: list[tuple[Point, dict[str, Any]]] = []
    if spec.search is not None:
        space, space_problems = parse_space(spec.search.space, spec.search.sampler == "grid")
        problems += [pos.problem(p, m, value=v, has_value=True) for p, m, v in space_problems]
        probes = _resolve_points(spec, probe_points(space), pos, problems)
        problems += search_checks(spec, pos)
    notes: list[Problem] = list(stage_notes)
    if (points or probes) and deep:
        from ftsweep.config.inputs import input_notes

        problems += deep_checks(spec, points + probes, base_dir, pos)
        local = resolve_model_path(spec.model.path, base_dir)
        notes += input_notes(spec, [c for _, c in points + probes], local, pos)
    problems += inline_prompt_files(points, base_dir, pos)
    if problems:
        raise ConfigError(_dedupe(problems))
    paths, fingerprints = _fingerprints(spec, base_dir)
    exp = Experiment(
        file=path,
        spec=spec,
        search=space,
        paths=paths,
        fingerprints=fingerprints,
        notes=notes,
        stage=stage,
        pending=points,
    )
    if stage is None or stage.run_id is not None:  # else: built once `best` is selected
        exp.build_runs()
    return exp


def _runs_of(
    spec: ExperimentFile,
    points: list[tuple[Point, dict[str, Any]]],
    paths: dict[str, str],
    fingerprints: dict[str, str],
    stage: Any,
) -> list[RunSpec]:
    # Each point's config was built fresh by _resolve_points and is not used again, so
    # its seeds' runs share it (a 100k-run plan spent 3/4 of its time deep-copying).
    if stage is not None:
        from ftsweep.config.stages import attach

        points = [(point, attach(cfg, stage)) for point, cfg in points]
    return [
        run
        for point, cfg in points
        for run in RunSpec.for_seeds(
            spec.experiment,
            point.method,
            _seeds_for(point.method, spec.seeds),
            _params(point, cfg),
            cfg,
            paths,
            fingerprints,
        )
    ]


def _stage_point_problems(
    points: list[tuple[Point, dict[str, Any]]], pos: Positions
) -> list[Problem]:
    """A stage's methods must be able to start from a parent's weights (the matrix
    cannot vary the model block, hence not the parent either)."""
    from ftsweep.config.stages import child_problem

    out = []
    for point, _ in points:
        why = child_problem(get_method(point.method)())
        if why:
            where = point.origin or ("matrix",)
            out.append(pos.problem(where, f"method {point.method} cannot start a stage: {why}"))
    return out


def _size_problems(data: dict[str, Any], max_runs: int | None, pos: Positions) -> list[Problem]:
    """The refusal of a matrix with more runs than the limit, counted without expanding it.

    Runs before the schema is checked (the raw file), so the limit and the seeds are read
    leniently here; the schema reports them if they are malformed.
    """
    matrix = data.get("matrix")
    if not isinstance(matrix, dict):
        return []
    launch = data.get("launch")
    from_file = launch.get("max_runs") if isinstance(launch, dict) else None
    limit = max_runs or (
        from_file if type(from_file) is int and from_file >= 1 else DEFAULT_MAX_RUNS
    )
    seeds = data.get("seeds")
    n_seeds = len(seeds) if isinstance(seeds, list) and seeds else 1
    message = too_many(count(matrix), n_seeds, limit)
    return [pos.problem(("matrix",), message)] if message else []


def _set_copying(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """``nested_set`` that copies the dicts on the key's path instead of changing them
    (the rest stays shared with the spec's blocks)."""
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = child = dict(child) if isinstance(child, dict) else {}
        node = child
    node[parts[-1]] = value


def _resolve_points(
    spec: ExperimentFile, points: list[Point], pos: Positions, problems: list
) -> list[tuple[Point, dict[str, Any]]]:
    base = spec.model_dump(mode="json", include=set(OVERRIDABLE_BLOCKS))
    out = []
    for point in points:
        # Only the blocks a point overrides are copied and validated again; the others
        # are the spec's, validated once and shared read-only (as RunSpec.for_seeds does).
        touched = {key.split(".", 1)[0] for key, _ in point.values if "." in key}
        cfg = dict(base)
        method_params: dict[str, Any] = {}
        for key, value in point.values:
            if "." in key:
                _set_copying(cfg, key, value)
            else:
                method_params[key] = value
        where = point.origin or ("matrix",)
        ok = True
        for block, model in OVERRIDABLE_BLOCKS.items():
            if block not in touched:
                continue
            try:
                cfg[block] = model.model_validate(cfg[block]).model_dump(mode="json")
            except ValidationError as exc:
                ok = False
                problems += _pydantic_problems(exc, pos, where + (block,), model)
        try:
            cls = get_method(point.method)
            params = cls.Params.model_validate(method_params)
            cfg["method"] = {"name": point.method, **params.model_dump(mode="json")}
        except ValidationError as exc:
            ok = False
            problems += _pydantic_problems(exc, pos, where, cls.Params)
        cfg["num_processes"] = spec.launch.num_processes  # before: grpo's batch rule reads it
        if ok:  # what is optimised must suit the data and the method (config/objective.py)
            found = objective_problems(cfg, where, pos)
            problems += found
            ok = not found
        if spec.launch.num_machines > 1:
            cfg["num_machines"] = spec.launch.num_machines
        if ok:
            out.append((point, cfg))
    return out


def _seeds_for(method: str, seeds: list[int]) -> list[int]:
    """A method that does not train (the base model) gives the same scores for any seed:
    greedy decoding is deterministic, so it runs once, with the first seed."""
    return seeds if get_method(method).trains else seeds[:1]


def _params(point: Point, cfg: dict[str, Any]) -> dict[str, Any]:
    """The point's values as validated (so '1e-3' from YAML 1.1 reads back as 0.001)."""
    out = {}
    for key, _ in point.values:
        out[key] = nested_get(cfg, key) if "." in key else cfg["method"][key]
    return out


def _fingerprints(spec: ExperimentFile, base_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    paths: dict[str, str] = {}
    fps: dict[str, str] = {}
    local = resolve_model_path(spec.model.path, base_dir)
    paths["model"] = str(local) if local else spec.model.path
    fps["model"] = model_fingerprint(local, spec.model.path, spec.model.revision)
    for key, rel in evaluator_files(spec):  # e.g. the forgetting probe
        p = (base_dir / rel).resolve()
        paths[key] = str(p)
        fps[key] = file_fingerprint(p)
    if spec.data.hub is not None:
        h = spec.data.hub
        # Unpinned hub data can change upstream; pin `revision` for reproducible run ids.
        fps["data.hub"] = f"hub:{h.name}/{h.config or ''}@{h.revision or 'main'}"
        return paths, fps
    files: list[tuple[str, str]] = []
    for split in ("train", "eval", "test"):
        rel = getattr(spec.data, split)
        if isinstance(rel, list):  # a mixture: each source's file by its name
            files += [(f"data.train.{source.label}", source.path) for source in rel]
        elif rel:
            files.append((f"data.{split}", rel))
    for key, rel in files:
        p = (base_dir / rel).resolve()
        paths[key] = str(p)
        fps[key] = file_fingerprint(p)
    return paths, fps


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen = set()
    out = []
    for p in problems:
        key = (p.line, p.key_path, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
