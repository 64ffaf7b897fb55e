"""Layer freezing: train the top N transformer blocks and/or named modules; freeze the rest."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ftsweep.methods import register
from ftsweep.methods.base import Method, MethodParams, ModelInfo
from ftsweep.methods.blocks import (
    decoder_blocks,
    embedding_params,
    head_params,
    params_of,
    set_trainable,
)


class FreezeParams(MethodParams):
    # None/0 with train_modules set: train only the named modules.
    train_top_n: int | None = Field(2, ge=0, description="top transformer blocks that train")
    train_modules: list[str] = Field(
        default_factory=list, description="parameter-name substrings that also train"
    )
    # The head maps the top blocks' features to tokens; training it with them is the
    # usual "freeze the bottom" recipe. Embeddings are the most general part: frozen.
    train_lm_head: bool = True
    train_final_norm: bool = True
    train_embeddings: bool = False


@register
class Freeze(Method):
    name = "freeze"
    description = "layer freezing: train the top N blocks and/or named modules only"
    Params = FreezeParams

    def check(self, params: Any, info: ModelInfo) -> list[tuple[str, str]]:
        problems = []
        n = params.train_top_n or 0
        if info.num_layers and n > info.num_layers:
            problems.append(("train_top_n", f"the model has only {info.num_layers} blocks"))
        for sub in params.train_modules:
            if info.param_names and not any(sub in name for name in info.param_names):
                sample = ", ".join(sorted(info.param_names)[:4])
                problems.append(
                    (
                        "train_modules",
                        f"{sub!r} matches no parameter name (names look like: {sample}, ...)",
                    )
                )
        if not (
            n
            or params.train_modules
            or params.train_lm_head
            or params.train_final_norm
            or params.train_embeddings
        ):
            problems.append(
                (
                    "train_top_n",
                    "nothing would train: set train_top_n, "
                    "train_modules or one of the train_* flags",
                )
            )
        return problems

    def apply(self, model: Any, params: MethodParams) -> Any:
        set_trainable(model, trainable_params(model, params))
        return model


def trainable_params(model: Any, params: Any) -> list[Any]:
    """The parameters a freeze config trains, in model order."""
    blocks = decoder_blocks(model)
    n = params.train_top_n or 0
    chosen = params_of(list(blocks[len(blocks) - n :])) if n else []
    chosen += head_params(model, params.train_lm_head, params.train_final_norm)
    if params.train_embeddings:
        chosen += embedding_params(model)
    chosen += [
        p
        for name, p in model.named_parameters()
        if any(sub in name for sub in params.train_modules)
    ]
    return chosen
