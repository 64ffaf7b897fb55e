"""Stages: ``model.from_run`` starts an experiment's runs from another run's weights.

A child experiment names its parent experiment file and which of its runs to start
from: ``select: RUN_ID``, or ``select: best``. Loading the child loads the parent too
(recursively; a cycle is refused), so ``validate`` checks the whole chain. The parent's
run id becomes part of every child run's resolved config (``model.from_run.run_id``),
hence of its run id: a parent whose config changes gets a new id, and so do its
children.

Choosing ``best`` needs the workspace (which parent runs completed, and their scores),
so a child of ``best`` has no runs until ``bind`` finds its parent trained: ``plan``
shows "selected after the parent trains", ``launch`` trains the parent first.

How ``best`` is chosen, honestly: the parent's runs are compared on data the parent
was not *reported* on. In order of preference, the first of these that some completed
parent run has decides, and runs without it are not candidates:

1. the primary metric of the final evaluation, when the parent evaluates on its
   ``eval`` (validation) split;
2. the last value of the primary metric logged on the eval split during training;
3. the last ``eval_loss`` logged on the eval split during training (the primary
   metric is then scored on test only);
4. the primary metric on the test split, with a warning: the parent's reported test
   score is then also what chose it, so it is optimistic.

Ties go to the run listed first by the parent's matrix. A parent's search trials are
not candidates (only its grid runs): a trial's runs are not known from the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ftsweep.config.schema import FromRun
from ftsweep.config.yamlpos import Positions
from ftsweep.errors import ConfigError, Problem, did_you_mean

if TYPE_CHECKING:
    from ftsweep.config.load import Experiment
    from ftsweep.workspace import Workspace

WHERE = ("model", "from_run")
# Why a parent's method cannot hand its training on as plain weights.
QLORA_PARENT = (
    "its LoRA was trained against a 4-bit quantised base: merged into the full-precision "
    "base it is not the model the parent evaluated; start from a lora parent"
)


@dataclass
class Stage:
    """A child experiment's link to its parent experiment."""

    parent: Experiment
    file: Path  # the parent's experiment file
    select: str  # "best" or a run id
    where: Problem  # the child's model.from_run, for errors found when binding
    run_id: str | None = None  # the selected parent run, once known
    how: str = ""  # how it was selected, in words
    warnings: list[str] = field(default_factory=list)

    def problem(self, message: str, valid: str = "") -> Problem:
        w = self.where
        return Problem(w.path, message, valid=valid, file=w.file, line=w.line)

    def from_run(self) -> dict[str, Any]:
        """What a bound child's resolved config carries as ``model.from_run``."""
        return {
            "experiment": self.parent.spec.experiment,
            "select": self.select,
            "run_id": self.run_id,
        }


def parent_file(name: str, child: Path) -> Path:
    """A path relative to the child's file, or a bare name: ``<child dir>/<name>.yaml``."""
    base = child.resolve().parent
    if "/" in name or name.endswith((".yaml", ".yml")):
        return (base / name).resolve()
    return (base / f"{name}.yaml").resolve()


def parent_problem(method: Any) -> str:
    """Why a parent run of this method cannot become plain weights ("" when it can)."""
    if method.name == "qlora":
        return QLORA_PARENT
    if method.export_as == "adapter":
        return (
            "it adds modules or virtual tokens that cannot be merged into plain weights, "
            "so a later stage has nothing to start from"
        )
    return ""


def child_problem(method: Any) -> str:
    """Why a child of this method cannot start from a parent's weights ("" when it can)."""
    from ftsweep.methods.base import Method

    if type(method).load_kwargs is not Method.load_kwargs:
        return (
            f"{method.name} loads its base from a model directory with its own settings "
            "(quantised); a stage's base is its parent's merged weights, built in memory"
        )
    return ""


def load_stage(
    data: dict[str, Any],
    path: Path,
    pos: Positions,
    deep: bool,
    chain: tuple[Path, ...],
) -> tuple[Stage | None, list[Problem], list[Problem]]:
    """Load the parent of a file whose ``model.from_run`` is set: (stage, problems, notes).

    Fills ``model.path`` (and ``revision``) from the parent when the child leaves them
    out, so the child's checks see the model its weights come from.
    """
    from ftsweep.config.load import load_experiment

    model = data["model"]
    try:
        spec = FromRun.model_validate(model["from_run"])
    except ValidationError:
        return None, [], []  # the schema reports it, with the rest of the file
    here = path.resolve()
    file = parent_file(spec.experiment, path)
    at = WHERE + ("experiment",)
    if not file.is_file():
        valid = "a path relative to this file, or a bare name for <this file's dir>/<name>.yaml"
        msg = f"no parent experiment file {file}"
        return None, [pos.problem(at, msg, value=spec.experiment, has_value=True, valid=valid)], []
    if file in chain + (here,):
        msg = "stages form a cycle: " + " → ".join(p.name for p in (*chain, here, file))
        return None, [pos.problem(at, msg, value=spec.experiment, has_value=True)], []
    try:
        parent = load_experiment(file, deep=deep, _chain=(*chain, here))
    except ConfigError as exc:
        head = pos.problem(
            at, f"the parent experiment {file} has {len(exc.problems)} problem(s), listed here"
        )
        return None, [head, *exc.problems], []
    problems = _model_problems(model, parent, path, pos)
    where = pos.problem(WHERE + ("select",), "")
    stage = Stage(parent, file, spec.select, where)
    notes: list[Problem] = []
    if spec.select == "best":
        problems += _best_candidates(stage, pos, notes)
    else:
        problems += _chosen_run(stage, pos)
    return stage, problems, notes


def _model_problems(
    model: dict[str, Any], parent: Experiment, path: Path, pos: Positions
) -> list[Problem]:
    from ftsweep.config.checks import resolve_model_path
    from ftsweep.fingerprint import model_fingerprint

    if model.get("path") is None:
        model["path"] = parent.paths["model"]
        model.setdefault("revision", parent.spec.model.revision)
        return []
    if not isinstance(model["path"], str):
        return []  # the schema says what is wrong with it
    local = resolve_model_path(model["path"], path.resolve().parent)
    fp = model_fingerprint(local, model["path"], model.get("revision"))
    if fp == parent.fingerprints["model"]:
        return []
    return [
        pos.problem(
            ("model", "path"),
            "is not the parent experiment's base model: a stage's weights come from its "
            "parent, so its architecture and tokenizer are the parent's",
            value=model["path"],
            has_value=True,
            valid=f"{parent.paths['model']} (or leave model.path out)",
        )
    ]


def _chosen_run(stage: Stage, pos: Positions) -> list[Problem]:
    from ftsweep.methods import get_method

    at = WHERE + ("select",)
    runs = {r.run_id: r for r in stage.parent.runs}
    run = runs.get(stage.select)
    if run is None and stage.parent.pending:
        return [
            pos.problem(
                at,
                f"the parent experiment {stage.parent.spec.experiment!r} is a stage whose own "
                "parent is selected as best when it has trained: its run ids are not known yet",
                value=stage.select,
                has_value=True,
                valid="best",
            )
        ]
    if run is None:
        shown = ", ".join(list(runs)[:10]) + (", ..." if len(runs) > 10 else "")
        return [
            pos.problem(
                at,
                f"no run {stage.select!r} in the parent experiment "
                f"{stage.parent.spec.experiment!r} ({stage.file})"
                + did_you_mean(stage.select, runs),
                value=stage.select,
                has_value=True,
                valid=f"best, or one of its run ids: {shown or 'none (it has no grid runs)'}",
            )
        ]
    why = parent_problem(get_method(run.method))
    if why:
        return [pos.problem(at, f"run {run.run_id} ({run.method}) cannot be a parent: {why}")]
    stage.run_id, stage.how = run.run_id, "chosen by its run id"
    return []


def _best_candidates(stage: Stage, pos: Positions, notes: list[Problem]) -> list[Problem]:
    from ftsweep.methods import get_method

    at = WHERE + ("select",)
    parent = stage.parent  # a parent that is itself a stage may have pending points only
    methods = sorted({r.method for r in parent.runs} | {p.method for p, _ in parent.pending})
    refused = {m: parent_problem(get_method(m)) for m in methods}
    refused = {m: why for m, why in refused.items() if why}
    if not methods:
        return [
            pos.problem(
                at,
                f"the parent experiment {stage.file} has no grid runs to "
                "select from (a search's trials are not candidates)",
            )
        ]
    if len(refused) == len(methods):
        reasons = "; ".join(f"{m}: {why}" for m, why in refused.items())
        return [pos.problem(at, f"no run of the parent experiment can be a parent: {reasons}")]
    for m, why in refused.items():
        notes.append(pos.problem(at, f"the parent's {m} runs are not candidates for best: {why}"))
    return []


def attach(cfg: dict[str, Any], stage: Stage) -> dict[str, Any]:
    """``cfg`` with the bound parent in ``model.from_run`` (copies the model block)."""
    return {**cfg, "model": {**cfg["model"], "from_run": stage.from_run()}}


def bind(exp: Experiment, ws: Workspace) -> None:
    """Resolve ``exp``'s parent against the workspace and build its runs when it can.

    Binds the parent's own parent first. ``select: best`` stays unbound (no runs) while
    any parent run is still to train; raises ConfigError when none completed. A bound
    stage stays bound: load the file again to bind it against another workspace.
    """
    stage = exp.stage
    if stage is None:
        return
    bind(stage.parent, ws)
    if stage.run_id is None and stage.select == "best":
        _select_best(stage, ws)
    if stage.run_id is None:
        return
    parent = ws.run_dir(stage.parent.spec.experiment, stage.run_id).path
    exp.paths["parent_run"] = str(parent.resolve())
    if exp.pending:
        exp.build_runs()


def _select_best(stage: Stage, ws: Workspace) -> None:
    from ftsweep.methods import get_method
    from ftsweep.plan import plan

    items = plan(stage.parent, ws)
    if not stage.parent.runs or any(i.will_train or i.state == "running" for i in items):
        return  # selected after the parent trains
    done = [
        i for i in items if i.state == "complete" and not parent_problem(get_method(i.run.method))
    ]
    if not done:
        states = ", ".join(sorted({i.state for i in items}))
        raise ConfigError(
            [
                stage.problem(
                    f"the parent experiment {stage.parent.spec.experiment!r} ({stage.file}) "
                    f"has no completed run that can be a parent (its runs are: {states})",
                    valid="`ftsweep status` and the runs' worker.log say why; "
                    "`ftsweep launch --retry-failed` on the parent file retries them",
                )
            ]
        )
    scored = [(i, _scores(i)) for i in done]
    for level in range(len(BASES)):
        have = [(i, v) for i, s in scored if (v := s[level]) is not None]
        if have:
            break
    else:
        raise ConfigError([stage.problem("no completed parent run has a score to select by")])
    metric = stage.parent.spec.eval.primary_metric if level != 2 else "eval_loss"
    sign = 1.0 if _higher_is_better(metric) else -1.0
    best, value = max(have, key=lambda x: sign * x[1])  # the first of equals
    stage.run_id = best.run.run_id
    n = len(have)
    stage.how = f"best {metric} {value:.4g} {BASES[level]} ({n} candidate{'s' * (n != 1)})"
    if level == 3 and n > 1:  # one candidate: nothing was chosen, so nothing leaked
        stage.warnings.append(
            f"the parent run {stage.run_id} was selected on the test split (its {metric}): "
            "the parent's reported test score is then optimistic; set the parent's "
            "eval.split: eval, or training.eval_every, to select on validation data"
        )


BASES = (
    "on the eval split (final evaluation)",
    "on the eval split (last logged during training)",
    "on the eval split (last logged during training; the primary metric is scored on test)",
    "on the test split",
)


def _scores(item: Any) -> list[float | None]:
    """The run's value on each of BASES (None where it has none)."""
    cfg = item.run.config
    metric = cfg["eval"]["primary_metric"]
    result = item.run_dir.result() or {}
    final = result.get("final_eval") or {}
    on_eval = result.get("eval_split") == "eval"
    logged: dict[str, float] = {}
    for row in item.run_dir.metrics():  # in step order: the last value wins
        if row.get("name", "").startswith("eval_"):
            logged[row["name"]] = row.get("value")
    named = metric if metric.startswith("eval_") else f"eval_{metric}"
    return [
        _finite(final.get(metric)) if on_eval else None,
        _finite(logged.get(named)),
        _finite(logged.get("eval_loss")),
        _finite(final.get(metric)) if not on_eval else None,
    ]


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _higher_is_better(metric: str) -> bool:
    from ftsweep.evaluators.registry import metric_direction

    direction = metric_direction(metric)
    if direction is None:
        return "loss" not in metric and "perplexity" not in metric
    return bool(direction)


def parent_run_dir(spec: dict[str, Any], run_dir: Path | None = None) -> Path | None:
    """A child run's parent run directory: the spec's ``paths.parent_run``, or (a moved
    workspace) its sibling experiment directory next to ``run_dir``'s. None: no parent."""
    from ftsweep.workspace import safe_name

    from_run = (spec["config"].get("model") or {}).get("from_run")
    if not from_run:
        return None
    given = Path(spec["paths"].get("parent_run", ""))
    if spec["paths"].get("parent_run") and given.is_dir():
        return given
    if run_dir is not None:
        return (
            run_dir.parent.parent
            / safe_name(from_run["experiment"])
            / safe_name(from_run["run_id"])
        )
    return given
