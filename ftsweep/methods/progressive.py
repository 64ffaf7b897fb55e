"""Progressive (gradual) unfreezing, ULMFiT-style, with optional discriminative lrs.

Training starts with the top ``start_blocks`` blocks (and, by default, lm_head + final
norm) trainable; every stage unfreezes the next ``blocks_per_stage`` blocks below, until
all blocks train, then (``embeddings_last``) the embeddings. A stage lasts
``unfreeze_every: {steps: K}`` optimizer steps, or one epoch (``unfreeze_every: epoch``).

How it fits the Trainer: the optimizer is built once, so ``param_groups`` hands it every
parameter from the start (one group per block, so ``layer_lr_decay`` can give each block
its lr); frozen parameters have requires_grad=False, hence ``grad is None``, and torch's
AdamW/SGD skip such parameters entirely (no update, no weight decay, no state). The
``Unfreezer`` callback (progressive_schedule.py) flips requires_grad at step or epoch boundaries; it recomputes the
stage from ``state`` at train start, so a resumed run continues with the right blocks.

DDP caveat: DistributedDataParallel registers its all-reduce hooks only for parameters
that require grad when the model is wrapped; blocks unfrozen later would train on each
rank's own gradients and silently diverge. Run ``progressive`` with one process
(the config check rejects it with launch.num_processes > 1).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ftsweep.methods import register
from ftsweep.methods.base import Method, MethodParams, ModelInfo
from ftsweep.methods.blocks import (
    decoder_blocks,
    embedding_params,
    head_params,
    params_of,
    set_trainable,
)


class EverySteps(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(gt=0)


class ProgressiveParams(MethodParams):
    start_blocks: int = Field(1, ge=0, description="top blocks trainable from the first step")
    blocks_per_stage: int = Field(1, gt=0, description="blocks unfrozen at each stage")
    unfreeze_every: EverySteps | Literal["epoch"] = "epoch"  # ULMFiT unfreezes per epoch
    train_head: bool = True  # lm_head + final norm train from the start (ULMFiT's last layer)
    embeddings_last: bool = True  # one more stage after the blocks: the embeddings
    # Each block's lr = the block above's x decay (ULMFiT used 1/2.6 ~ 0.38); None: one lr.
    layer_lr_decay: float | None = Field(None, gt=0.0, le=1.0)


def stage_at(params: Any, step: int, epoch: float) -> int:
    """The stage the schedule is in after ``step`` optimizer steps / ``epoch`` epochs."""
    if params.unfreeze_every == "epoch":
        return int(epoch + 1e-9)  # state.epoch is fractional; a stage per finished epoch
    return step // params.unfreeze_every.steps


def blocks_at(params: Any, stage: int, num_blocks: int) -> int:
    """How many top blocks train at this stage."""
    return min(num_blocks, params.start_blocks + stage * params.blocks_per_stage)


def last_stage(params: Any, num_blocks: int) -> int:
    """The stage from which everything the schedule will ever unfreeze trains."""
    all_blocks = -(-max(num_blocks - params.start_blocks, 0) // params.blocks_per_stage)
    return all_blocks + (1 if params.embeddings_last else 0)


def embeddings_at(params: Any, stage: int, num_blocks: int) -> bool:
    """Embeddings train one stage after the last block was unfrozen (if embeddings_last)."""
    return params.embeddings_last and stage >= last_stage(params, num_blocks)


@register
class Progressive(Method):
    name = "progressive"
    description = "gradual unfreezing (ULMFiT): top blocks first, lower ones stage by stage"
    Params = ProgressiveParams
    cannot_shard = (
        "it changes which parameters train during training, while FSDP fixes "
        "which gradients it reduces when it shards the model"
    )

    def check(self, params: Any, info: ModelInfo) -> list[tuple[str, str]]:
        problems = []
        if info.num_layers and params.start_blocks > info.num_layers:
            problems.append(("start_blocks", f"the model has only {info.num_layers} blocks"))
        if params.start_blocks == 0 and not params.train_head:
            problems.append(
                ("start_blocks", "0 with train_head false: nothing trains at the start")
            )
        return problems

    def apply(self, model: Any, params: MethodParams) -> Any:
        set_trainable(model, stage_params(model, params, 0))
        return model

    def callbacks(self, params: MethodParams, model: Any) -> list[Any]:
        from ftsweep.methods.progressive_schedule import Unfreezer

        return [Unfreezer(model, params)]

    def param_groups(self, params: Any, model: Any, lr: float) -> list[dict]:
        """One group per block (bottom block lowest lr), one for the rest; ALL parameters."""
        blocks = decoder_blocks(model)
        decay = params.layer_lr_decay or 1.0
        n = len(blocks)
        groups: list[dict[str, Any]] = [
            {"params": params_of([b]), "lr": lr * decay ** (n - 1 - i), "name": f"block{i}"}
            for i, b in enumerate(blocks)
        ]
        in_blocks = {id(p) for g in groups for p in g["params"]}
        # A tied lm_head is the embedding matrix: with train_head it trains (and takes
        # the head's lr) from the start, so it is not an embeddings-stage parameter then.
        head = {id(p) for p in head_params(model, params.train_head, params.train_head)}
        emb = [p for p in embedding_params(model) if id(p) not in in_blocks | head]
        late = in_blocks | {id(p) for p in emb}
        groups.append(
            {
                "params": [p for p in model.parameters() if id(p) not in late],
                "lr": lr,
                "name": "head",
            }
        )
        groups.append({"params": emb, "lr": lr * decay**n, "name": "embeddings"})
        return [g for g in groups if g["params"]]


def stage_params(model: Any, params: Any, stage: int) -> list[Any]:
    blocks = decoder_blocks(model)
    k = blocks_at(params, stage, len(blocks))
    chosen = params_of(list(blocks[len(blocks) - k :])) if k else []
    chosen += head_params(model, params.train_head, params.train_head)
    if embeddings_at(params, stage, len(blocks)):
        chosen += embedding_params(model)
    return chosen
