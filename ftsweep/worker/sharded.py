"""The trained model as plain tensors, for the rank that evaluates and saves it.

After training, rank 0 alone evaluates and saves. Under DDP every rank holds the whole
model, so unwrapping is enough. Under FSDP each rank holds only its shard (DTensors):
a forward on rank 0 alone would wait forever for the other ranks' all-gathers, or read
a shard as if it were the weight. So every rank first takes part in gathering the full
state dict (a collective), and rank 0 loads it into a freshly built, unsharded copy of
the model, on which evaluation, saving and a later reload agree exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def is_sharded(accelerator: Any) -> bool:
    """True when the prepared model holds only this rank's shard of the weights."""
    from accelerate.utils import DistributedType

    return bool(accelerator.distributed_type == DistributedType.FSDP)


def trained_model(trainer: Any, rebuild: Callable[[], Any], is_main: bool) -> Any | None:
    """The trained model on rank 0 (None on the others); call it on every rank.

    ``rebuild`` returns the untrained model exactly as the run built it before training
    (base weights, then the method applied); it runs on rank 0 only.
    """
    acc = trainer.accelerator
    if not is_sharded(acc):
        return acc.unwrap_model(trainer.model)
    state = acc.get_state_dict(trainer.model)  # full tensors on rank 0, on CPU
    if not is_main:
        return None
    model = rebuild()
    # strict: a key the fresh copy lacks (or misses) means it is not the trained model
    model.load_state_dict(state, strict=True)
    return model.to(acc.device)
