"""Fairness warnings: reasons a comparison between methods may not be like for like.

Shown near the top of the report, before any ranking, each with the numbers behind it:

* **tokens** — the leaderboard's rows trained on different numbers of tokens (their
  mean ``tokens_seen`` differs by more than ``TOKEN_TOLERANCE``): a method that saw
  more data may win for that reason alone;
* **learning rate** — a trained method was tried at one learning rate while another
  got several: its row is a single guess against a tuned rival;
* **hidden settings** — complete runs differ in a resolved-config setting that the
  report does not show (not one of the matrix's varied values, nor the seed): two rows
  may differ for a reason no column names. Method settings (``method.*``) are compared
  only between runs of the same method, since methods differ in them by design; the
  objective and a run's parent (``model.from_run.*``) are shown by the leaderboard's
  grouping and the Stages section.

Pure functions over query rows and view-model rows.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftsweep.report.numbers import fmt_num
from ftsweep.report.rows import LeaderRow, group_name, objective_of, run_lr, trains_nothing

TOKEN_TOLERANCE = 0.05  # 5%: seeds shuffle differently, so token counts wobble a little
_SHOWN = 4  # values listed per hidden setting
# a run's parent (model.from_run.*) is named by the Stages section (report/stages.py)
_STAGE_KEY = "model.from_run."


@dataclass(frozen=True)
class FairnessWarning:
    kind: str  # "tokens", "learning rate" or "hidden settings"
    message: str


def _tokens(leaders: Sequence[LeaderRow]) -> list[FairnessWarning]:
    seen = [
        (r.label, r.tokens_seen.mean)
        for r in leaders
        if not r.fixed and r.tokens_seen.mean is not None and r.tokens_seen.mean > 0
    ]
    if len(seen) < 2:
        return []
    low, high = min(t for _, t in seen), max(t for _, t in seen)
    if high <= low * (1 + TOKEN_TOLERANCE):
        return []
    listed = ", ".join(f"{label} {fmt_num(t)}" for label, t in sorted(seen, key=lambda x: -x[1]))
    return [
        FairnessWarning(
            "tokens",
            f"the best configs trained on different numbers of tokens ({listed}; mean over "
            f"seeds): the most saw {fmt_num(high / low)}× the fewest",
        )
    ]


def _learning_rates(complete: Sequence[dict[str, Any]]) -> list[FairnessWarning]:
    fixed = {m for m in {r["method"] for r in complete} if trains_nothing(m)}
    several = len({objective_of(r) for r in complete}) > 1  # then objective × method
    lrs: dict[str, set[float]] = defaultdict(set)
    for run in complete:
        lr = run_lr(run)
        if run["method"] not in fixed and lr is not None:
            lrs[group_name(run, several)].add(lr)
    tuned = {m: len(v) for m, v in lrs.items() if len(v) > 1}
    once = sorted(m for m, v in lrs.items() if len(v) == 1)
    if not tuned or not once:
        return []
    others = ", ".join(f"{m} {n}" for m, n in sorted(tuned.items()))
    return [
        FairnessWarning(
            "learning rate",
            f"{', '.join(once)} tried at one learning rate only, while others got several "
            f"({others}): a single guess against a tuned rival",
        )
    ]


# One encoder for every leaf: json.dumps(value, sort_keys=True) builds a new encoder on
# each call, which for 1,000 runs' configs was most of this module's time. Same text.
_ENCODE = json.JSONEncoder(sort_keys=True).encode
_SCALARS = (str, int, bool, type(None))  # hashable, and equal only when their JSON is


def _flatten(
    prefix: str, value: Any, out: dict[str, str], memo: dict[tuple[type, Any], str]
) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out, memo)
    elif isinstance(value, _SCALARS):  # runs repeat the same values: encode each once
        key = (type(value), value)
        text = memo.get(key)
        if text is None:
            text = memo[key] = _ENCODE(value)
        out[prefix] = text
    else:  # floats (-0.0 == 0.0 but prints apart), lists
        out[prefix] = _ENCODE(value)


def _shown(run: dict[str, Any]) -> set[str]:
    """Config keys the report shows for a run: its varied values and the seed."""
    keys = {"seed", "method", "method.name"}  # the method is every row's label
    keys.add("training.objective")  # rows are grouped by it (rows.py) when it differs
    for param in run.get("params") or {}:
        keys |= {param, f"method.{param}"}  # a method's own value ("r") lives in method.*
    return keys


def _hidden(complete: Sequence[dict[str, Any]]) -> list[FairnessWarning]:
    shown: set[str] = set()
    flats: list[tuple[str, dict[str, str]]] = []
    memo: dict[tuple[type, Any], str] = {}
    for run in complete:
        shown |= _shown(run)
        flat: dict[str, str] = {}
        _flatten("", run.get("config") or {}, flat, memo)
        flats.append((run["method"], flat))
    keys = {(k, m if k.startswith("method.") else "") for m, flat in flats for k in flat}
    out = []
    for key, scope in sorted(keys):
        if key in shown or key.startswith(_STAGE_KEY):
            continue
        # value → methods using it; a run without the key counts as "(absent)"
        seen: dict[str, set[str]] = defaultdict(set)
        for method, flat in flats:
            if not scope or method == scope:
                seen[flat.get(key, "(absent)")].add(method)
        if len(seen) < 2:
            continue
        listed = "; ".join(
            f"{text if len(text) <= 40 else text[:37] + '...'} ({', '.join(sorted(ms))})"
            for text, ms in sorted(seen.items())[:_SHOWN]
        )
        more = f" and {len(seen) - _SHOWN} more" if len(seen) > _SHOWN else ""
        within = f" between {scope} runs" if scope else ""
        out.append(
            FairnessWarning(
                "hidden settings",
                f"{key} differs{within} but is not a varied value the report shows: {listed}{more}",
            )
        )
    return out


def fairness_warnings(
    complete: Sequence[dict[str, Any]], leaders: Sequence[LeaderRow]
) -> list[FairnessWarning]:
    """Every warning, tokens first, then learning rates, then hidden settings."""
    return [*_tokens(leaders), *_learning_rates(complete), *_hidden(complete)]
