"""The unfreezing schedule applied during training, a transformers callback (apart from
``progressive.py`` so that the method registers without importing transformers)."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from ftsweep.methods.blocks import count_trainable, decoder_blocks, set_trainable
from ftsweep.methods.progressive import last_stage, stage_at, stage_params


class Unfreezer(TrainerCallback):
    """Applies the unfreezing schedule; ``history`` holds (global_step, trainable params)."""

    def __init__(self, model: Any, params: Any) -> None:
        self.model, self.params = model, params
        self.stage: int | None = None
        self.history: list[tuple[int, int]] = []

    def _sync(self, state: Any) -> None:
        stage = min(
            stage_at(self.params, state.global_step, state.epoch or 0.0),
            last_stage(self.params, len(decoder_blocks(self.model))),
        )
        if stage != self.stage:
            self.stage = stage
            set_trainable(self.model, stage_params(self.model, self.params, stage))
            self.history.append((state.global_step, count_trainable(self.model)))

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._sync(state)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.params.unfreeze_every != "epoch":
            self._sync(state)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._sync(state)
