"""Where a causal LM keeps its parts: transformer blocks, embeddings, final norm, head.

Used by the methods that freeze by position (``freeze``, ``progressive``, ``adapter``).
Not a method itself: nothing here registers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftsweep.errors import FtsweepError

if TYPE_CHECKING:  # torch is imported where a model is at hand, not when methods register
    import torch

# Leaf names of the final normalisation in common decoder families (llama/mistral/qwen:
# norm, gpt2: ln_f, opt: final_layer_norm).
FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm")


def decoder_blocks(model: Any) -> torch.nn.ModuleList:
    """The transformer blocks, bottom first: the first ModuleList as long as the config says.

    Raises FtsweepError when no such list exists (an architecture we do not understand).
    """
    import torch

    n = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    for _, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and n and len(mod) == n:
            return mod
    raise FtsweepError(
        f"cannot find the {n} transformer blocks of this "
        f"{getattr(model.config, 'model_type', '?')} model"
    )


def final_norms(model: Any) -> list[torch.nn.Module]:
    """Normalisation modules after the last block (outside every block)."""
    blocks = {id(m) for m in decoder_blocks(model).modules()}
    return [
        mod
        for name, mod in model.named_modules()
        if name.rsplit(".", 1)[-1] in FINAL_NORM_NAMES and id(mod) not in blocks
    ]


def params_of(modules: list[Any]) -> list[torch.nn.Parameter]:
    """Distinct parameters of these modules, in order (tied weights appear once)."""
    seen: set[int] = set()
    out = []
    for mod in modules:
        for p in mod.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def head_params(model: Any, lm_head: bool, norm: bool) -> list[torch.nn.Parameter]:
    """lm_head and/or final-norm parameters. With tied embeddings, lm_head IS the embedding."""
    mods = ([model.get_output_embeddings()] if lm_head else []) + (
        final_norms(model) if norm else []
    )
    return params_of([m for m in mods if m is not None])


def embedding_params(model: Any) -> list[torch.nn.Parameter]:
    return params_of([model.get_input_embeddings()])


def set_trainable(model: Any, params: list[torch.nn.Parameter]) -> None:
    """Exactly ``params`` train afterwards; every other parameter of ``model`` is frozen."""
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


def count_trainable(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
