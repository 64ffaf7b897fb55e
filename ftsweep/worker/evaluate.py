"""Final evaluation: per-example loss, generation (greedy or sampled, answers
extracted when the file asks), and the evaluator plugins.

Runs on the main process only, after training, on the unwrapped model. Each
evaluator returns an aggregate and per-example scores; both are written to the run
directory (result.json and evals.jsonl) so the report can run paired statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ftsweep import evaluators as ev
from ftsweep.config.generation import resolved_max_new_tokens
from ftsweep.evaluators import extract as extraction
from ftsweep.rundir import EVALS, GENERATIONS, JsonlAppender, RunDir
from ftsweep.worker import faults
from ftsweep.worker.dataset import IGNORE, Example, PadCollator
from ftsweep.worker.sampling import decode_without_cache, sample

PROBE_SPLIT = "probe"  # the split of the forgetting probe's per-example rows

if TYPE_CHECKING:
    from ftsweep.worker.probe import ProbeSet


@dataclass
class EvalOutcome:
    aggregate: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, dict[str, str]] = field(default_factory=dict)  # evaluator -> its notes


def _batches(items: list[Any], size: int) -> Any:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.no_grad()
def per_example_loss(
    model: Any, examples: list[Example], pad_id: int, batch_size: int, device: torch.device
) -> dict[str, tuple[float, int]]:
    """(summed NLL, number of target tokens) per example id."""
    out: dict[str, tuple[float, int]] = {}
    collate = PadCollator(pad_id)
    for chunk in _batches(examples, batch_size):
        batch = collate([{"input_ids": e.input_ids, "labels": e.labels} for e in chunk])
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits = logits[:, -batch["labels"].shape[1] :, :]  # prompt-learning methods prepend tokens
        shift_logits = logits[:, :-1, :].float()
        shift_labels = batch["labels"][:, 1:]
        nll = torch.nn.functional.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]),
            shift_labels.reshape(-1),
            ignore_index=IGNORE,
            reduction="none",
        ).view(shift_labels.shape)
        mask = shift_labels != IGNORE
        for e, row_nll, row_mask in zip(chunk, nll, mask, strict=True):
            out[e.example_id] = (float(row_nll[row_mask].sum()), int(row_mask.sum()))
    return out


def _prompt_learning(model: Any) -> bool:
    cfg = getattr(model, "active_peft_config", None)
    return bool(getattr(cfg, "is_prompt_learning", False))


@torch.no_grad()
def greedy_without_cache(
    model: Any,
    tok: Any,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int,
    device: torch.device,
) -> list[str]:
    """Greedy decoding by full forward passes, for prompt-learning models.

    With peft 0.21 and transformers 5.x, ``generate`` on a prefix-tuned model silently
    drops the prefix (its first-step logits equal the base model's), while a plain
    forward pass uses it. Re-running the whole sequence each step costs more, but only
    these methods pay it, and it scores what the model actually learned.
    """
    return decode_without_cache(
        model, tok, prompts, max_new_tokens, batch_size, device, lambda s: int(s.argmax())
    )


@torch.no_grad()
def generate(
    model: Any,
    tok: Any,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int,
    device: torch.device,
) -> list[str]:
    """Greedy continuations of ``prompts``, cut at EOS; left padding for batched decoding."""
    if _prompt_learning(model):
        return greedy_without_cache(model, tok, prompts, max_new_tokens, batch_size, device)
    tok.padding_side = "left"
    outputs: list[str] = []
    for chunk in _batches(prompts, batch_size):
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=True).to(device)
        gen = model.generate(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        new = gen[:, enc["input_ids"].shape[1] :]
        outputs += tok.batch_decode(new, skip_special_tokens=True)
    return outputs


def generate_samples(
    model: Any, tok: Any, prompts: list[str], ecfg: dict[str, Any], device: torch.device, seed: int
) -> list[list[str]]:
    """The raw samples per prompt: one greedy continuation, or num_samples sampled ones."""
    gen = ecfg.get("generation") or {}
    max_new = resolved_max_new_tokens(ecfg)
    if not gen.get("do_sample"):
        return [[t] for t in generate(model, tok, prompts, max_new, ecfg["batch_size"], device)]
    return sample(
        model, tok, prompts, gen, max_new, ecfg["batch_size"], device, seed, _prompt_learning(model)
    )


def _items(
    examples: list[Example], raw: list[list[str]], ecfg: dict[str, Any]
) -> tuple[list[ev.EvalExample], list[dict[str, Any]]]:
    """Eval items (answers extracted when asked) and the raw record of each example."""
    extract = extraction.build(ecfg.get("answer_extraction"))
    items, records = [], []
    for e, samples in zip(examples, raw, strict=True):
        answers = [(extract(t) or "") for t in samples] if extract else list(samples)
        reference = extraction.reference_answer(extract, e.reference) if extract else e.reference
        items.append(
            ev.EvalExample(
                e.example_id,
                e.prompt,
                reference,
                answers[0],
                e.record,
                samples=tuple(answers) if len(answers) > 1 else (),
            )
        )
        records.append(
            {
                "example_id": e.example_id,
                "reference": e.reference,
                "reference_answer": reference,
                "samples": samples,
                "answers": answers,
            }
        )
    return items, records


def evaluate(
    model: Any,
    tok: Any,
    examples: list[Example],
    cfg: dict[str, Any],
    split: str,
    run: RunDir,
    device: torch.device,
    probes: ProbeSet | None = None,
    start: list[list[str]] | None = None,
) -> EvalOutcome:
    """Score the trained model; ``start``: the starting model's raw answers (win_rate)."""
    ecfg = cfg["eval"]
    model.eval()
    outcome = EvalOutcome()
    names = ecfg["evaluators"]
    built = {n: ev.build_evaluator(n, ecfg.get("evaluator_params", {}).get(n, {})) for n in names}
    scores = []
    probe_scores = []  # rows of the general-text probe, not the eval split
    for n, b in built.items():
        if b.reads_probe:
            if probes is None:
                raise RuntimeError(f"evaluator {n!r} needs the probe losses before training")
            probe_scores.append(probes.score(n, model, tok, ecfg["batch_size"]))
    # Pair evaluators name the margin they read (``reads_pairs``); each kind is computed once.
    reads: dict[str, str] = {n: getattr(b, "reads_pairs", "") for n, b in built.items()}
    paired = {n: b for n, b in built.items() if reads[n]}
    for kind in sorted({reads[n] for n in paired}):
        margins = _pair_margins(kind, model, tok, examples, cfg, device)
        scores += [
            type(b).from_margins(margins)  # type: ignore[attr-defined]
            for n, b in paired.items()
            if reads[n] == kind
        ]
    lossy = {
        n: b
        for n, b in built.items()
        if not b.needs_generation and not b.reads_probe and n not in paired
    }
    if lossy:
        losses = per_example_loss(model, examples, tok.pad_token_id, ecfg["batch_size"], device)
        # Loss-based evaluators score the per-example NLL, not generated text.
        scores += [
            type(b).from_losses(losses)  # type: ignore[attr-defined]
            for b in lossy.values()
        ]
    faults.at("evaluate")
    predictions: dict[str, str] = {}
    refs = {e.example_id: e.reference for e in examples}
    gen_names = [n for n, b in built.items() if b.needs_generation]
    if gen_names:
        raw = generate_samples(
            model, tok, [e.prompt for e in examples], ecfg, device, int(cfg.get("seed", 0))
        )
        items, records = _items(examples, raw, ecfg)
        predictions = {i.example_id: i.prediction for i in items}
        refs = {i.example_id: i.reference for i in items}
        raw_items = _items(examples, raw, {})[0]  # for evaluators of the raw text
        gen_scores = {
            n: _against_start(n, built[n], start, examples, ecfg, items)
            if getattr(built[n], "reads_start", False)
            else built[n].score(items if built[n].scores_answers else raw_items)
            for n in gen_names
        }
        scores += list(gen_scores.values())
        outcome.notes.update({n: dict(g.notes) for n, g in gen_scores.items() if g.notes})
        _write(run, GENERATIONS, [{"split": split, **r} for r in records])
    for s, row_split in [(s, split) for s in scores] + [(s, PROBE_SPLIT) for s in probe_scores]:
        outcome.aggregate.update(s.aggregate)
        for example_id, metric, value in s.per_example:
            outcome.rows.append(
                {
                    "split": row_split,
                    "example_id": example_id,
                    "metric": metric,
                    "value": value,
                    "prediction": predictions.get(example_id, ""),
                    "reference": refs.get(example_id, ""),
                }
            )
    _write(run, EVALS, outcome.rows)
    return outcome


def _pair_margins(
    kind: str, model: Any, tok: Any, examples: list[Example], cfg: dict[str, Any], device: Any
) -> dict[str, float]:
    """chosen-minus-rejected margins per example: the policy's summed log-probabilities
    (``log_prob``, worker/preference.py) or a reward model's scores (``score``)."""
    batch_size = cfg["eval"]["batch_size"]
    if kind == "log_prob":
        from ftsweep.worker.preference import pair_margins

        return pair_margins(model, tok, examples, batch_size, device)
    if kind == "score":
        from ftsweep.worker.reward import score_margins

        return score_margins(model, tok, examples, batch_size, device, cfg["data"]["max_length"])
    raise ValueError(f"unknown pair margin {kind!r}; valid: log_prob, score")


def _against_start(
    name: str,
    evaluator: ev.Evaluator,
    start: list[list[str]] | None,
    examples: list[Example],
    ecfg: dict[str, Any],
    items: list[ev.EvalExample],
) -> ev.EvalScores:
    """An evaluator comparing the tuned answers with the starting model's (win_rate)."""
    if start is None:
        raise RuntimeError(f"evaluator {name!r} needs the starting model's answers")
    return evaluator.score_against(_items(examples, start, ecfg)[0], items)  # type: ignore[attr-defined]


def _write(run: RunDir, name: str, rows: list[dict[str, Any]]) -> None:
    log = JsonlAppender(run.file(name))
    try:
        for row in rows:
            log.write(row)
    finally:
        log.close()
