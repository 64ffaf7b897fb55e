"""The general-text probe of probe-reading evaluators (forgetting): before and after.

``ProbeSet.before`` encodes each such evaluator's probe file and computes its token
losses on the model as loaded, before the method is applied; ``score`` computes them
again on the trained model and lets the evaluator score the pair. Both passes use the
same encoded examples, so the token counts match by construction.

Probe records are JSON lines ``{"id": ..., "text": ...}``; every token of the text
after the first carries loss (no prompt, no template: plain language modelling).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ftsweep import evaluators as ev
from ftsweep.worker.dataset import IGNORE, Example


class ProbeError(ValueError):
    """A probe file that cannot be used; the message names the file and line."""


def read_probe(path: Path, max_examples: int | None = None) -> list[dict[str, Any]]:
    """The probe's records, checked: each a JSON object with a unique "id" and a non-empty "text"."""
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ProbeError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("text"), str) or not rec["text"]:
                raise ProbeError(f'{path}:{lineno}: expected {{"id": ..., "text": "non-empty"}}')
            example_id = str(rec.get("id", f"line-{lineno}"))
            if example_id in seen:
                raise ProbeError(f"{path}:{lineno}: duplicate id {example_id!r}")
            seen.add(example_id)
            records.append({**rec, "id": example_id})
            if max_examples is not None and len(records) >= max_examples:
                break
    if not records:
        raise ProbeError(f"{path}: no probe records")
    return records


def encode_probe(records: list[dict[str, Any]], tok: Any, max_length: int) -> list[Example]:
    """Token ids with loss on every text token: BOS (if any) + text + EOS, cut at max_length."""
    out = []
    for rec in records:
        ids = tok(rec["text"], add_special_tokens=False)["input_ids"]
        if tok.eos_token_id is not None:
            ids = [*ids, tok.eos_token_id]
        labels = list(ids)
        if tok.bos_token_id is not None:
            ids, labels = [tok.bos_token_id, *ids], [IGNORE, *labels]
        ids, labels = ids[:max_length], labels[:max_length]
        out.append(Example(rec["id"], ids, labels, "", rec["text"], rec))
    return out


@dataclass
class ProbeSet:
    """Each probe-reading evaluator's encoded probe and its losses before training."""

    examples: dict[str, list[Example]] = field(default_factory=dict)
    before: dict[str, dict[str, tuple[float, int]]] = field(default_factory=dict)

    @classmethod
    def before_training(
        cls, model: Any, tok: Any, cfg: dict[str, Any], paths: dict[str, str]
    ) -> ProbeSet:
        """Encode the probes and compute their losses on ``model`` (not yet fine-tuned)."""
        from ftsweep.worker.evaluate import per_example_loss

        probes = cls()
        ecfg = cfg["eval"]
        for name in ecfg["evaluators"]:
            if not ev.get_evaluator(name).reads_probe:
                continue
            params = ev.build_evaluator(name, ecfg.get("evaluator_params", {}).get(name)).params
            path = Path(paths[f"eval.{name}.probe"])
            records = read_probe(path, getattr(params, "max_examples", None))
            examples = encode_probe(records, tok, getattr(params, "max_length", 128))
            device = _device(model)
            was_training = model.training
            model.eval()  # no dropout: "before" must be a deterministic number
            probes.examples[name] = examples
            probes.before[name] = per_example_loss(
                model, examples, tok.pad_token_id, ecfg["batch_size"], device
            )
            model.train(was_training)
        return probes

    def score(self, name: str, model: Any, tok: Any, batch_size: int) -> ev.EvalScores:
        """The evaluator's scores from its probe's losses before and now (after training)."""
        from ftsweep.worker.evaluate import per_example_loss

        after = per_example_loss(
            model, self.examples[name], tok.pad_token_id, batch_size, _device(model)
        )
        return ev.get_evaluator(name).from_probe(self.before[name], after)  # type: ignore[attr-defined]


def _device(model: Any) -> torch.device:
    """Where to run the probe: the model's device, or the GPU for a model still on CPU.

    In a single-process run the Trainer moves the model to the GPU only later; moving it
    first does the same move sooner, instead of a slow CPU pass over a large model. In a
    multi-process run the model stays where it is: FSDP and DeepSpeed shard it from the
    CPU copy, and one rank holding a whole large model on its GPU could run out of memory.
    """
    device = next(model.parameters()).device
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    if device.type == "cpu" and torch.cuda.is_available() and single:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        model.to(device)
    return device
