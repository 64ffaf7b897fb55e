"""AdaLoRA's rank budgeting during training, a transformers callback (apart from
``adalora.py`` so that the method registers without importing transformers)."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from ftsweep.errors import FtsweepError


class RankAllocation(TrainerCallback):
    """Calls peft's ``update_and_allocate`` after each optimizer step, while grads exist."""

    def __init__(self, model: Any, fixed_total: int | None) -> None:
        self.model = model  # the PeftModel returned by apply (callbacks get it before wrapping)
        self.fixed_total = fixed_total

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        total = self.fixed_total or int(state.max_steps)
        cfg = self.model.peft_config[self.model.base_model.trainable_adapter_name]
        if cfg.tinit >= total - cfg.tfinal:
            raise FtsweepError(
                f"adalora: tinit ({cfg.tinit}) + tfinal ({cfg.tfinal}) leave no rank-budgeting "
                f"phase in {total} training steps; lower them or train longer"
            )
        # The rank allocator holds this same config object, so one assignment updates both.
        cfg.total_step = total

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # global_step still counts the steps *before* this one here: 0 for the first step,
        # as in peft's own example loop.
        self.model.base_model.update_and_allocate(state.global_step)
