"""The starting model's answers, for evaluators that compare against them (win_rate).

Generated once, on the main process, from the model as loaded — before the method
changes it, as ``ProbeSet.before_training`` takes the forgetting probe's losses — on the
final eval's examples with the final eval's decoding and seed, so the two answer sets
differ only by the training in between.
"""

from __future__ import annotations

from typing import Any

from ftsweep import evaluators as ev
from ftsweep.worker.dataset import Example


def wanted(cfg: dict[str, Any]) -> bool:
    """Whether any of the run's evaluators reads the starting model's answers."""
    return any(
        getattr(ev.get_evaluator(n), "reads_start", False) for n in cfg["eval"]["evaluators"]
    )


def before_training(
    model: Any, tok: Any, cfg: dict[str, Any], examples: list[Example]
) -> list[list[str]] | None:
    """The raw samples per example of the model as loaded; None when nobody reads them."""
    if not wanted(cfg) or not examples:
        return None
    from ftsweep.worker.evaluate import generate_samples
    from ftsweep.worker.probe import _device

    was_training, side = model.training, tok.padding_side
    model.eval()  # no dropout: the same answers the final eval would have generated
    try:
        return generate_samples(
            model, tok, [e.prompt for e in examples], cfg["eval"], _device(model), cfg["seed"]
        )
    finally:
        model.train(was_training)
        tok.padding_side = side  # generation pads on the left; training data on the right
