"""Bottleneck adapters (Houlsby 2019 / Pfeiffer 2021), our own small implementation.

Why not the ``adapters`` package: it pins transformers 4.x and we run 5.x, and peft has
no bottleneck adapters. The method is ~100 lines: a down-projection, a nonlinearity,
dropout, a zero-initialised up-projection and a residual, inserted after the attention
(Houlsby only) and after the MLP (both) of every decoder block.

Insertion: each adapter is registered as a child of its decoder block
(``adapter_attn`` / ``adapter_mlp``) and applied by a forward hook on ``self_attn`` /
``mlp``. Wrapping those modules instead would rename every base weight
(``mlp.inner.up_proj``); with hooks the base keys are untouched and the adapter keys are
short and stable: ``model.layers.3.adapter_mlp.down.weight``.

``save`` writes only the adapter weights (``adapter.safetensors``) and the params
(``bottleneck_adapter.json``); ``load`` rebuilds the adapters on a fresh base model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import Field

from ftsweep.errors import FtsweepError
from ftsweep.methods import register
from ftsweep.methods.base import Method, MethodParams, ModelInfo
from ftsweep.methods.blocks import decoder_blocks

if TYPE_CHECKING:
    import torch

    from ftsweep.methods.adapter_layers import BottleneckAdapter

WEIGHTS = "adapter.safetensors"
CONFIG = "bottleneck_adapter.json"
# Placement → (sub-module the adapter follows, adapter attribute on the block).
SITES = {
    "houlsby": (("self_attn", "adapter_attn"), ("mlp", "adapter_mlp")),
    "pfeiffer": (("mlp", "adapter_mlp"),),
}


class AdapterParams(MethodParams):
    adapter_dim: int = Field(16, gt=0, description="bottleneck width")
    placement: Literal["houlsby", "pfeiffer"] = "pfeiffer"  # half the params, similar quality
    activation: Literal["relu", "gelu", "silu"] = "relu"  # Houlsby and Pfeiffer both use ReLU
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


@register
class Adapter(Method):
    name = "adapter"
    description = "bottleneck adapters (Houlsby/Pfeiffer): small MLPs after attention/MLP"
    Params = AdapterParams
    export_as = "adapter"

    def check(self, params: Any, info: ModelInfo) -> list[tuple[str, str]]:
        if info.hidden_size and params.adapter_dim >= info.hidden_size:
            return [
                (
                    "adapter_dim",
                    f"must be below hidden_size ({info.hidden_size}) to be a bottleneck",
                )
            ]
        return []

    def apply(self, model: Any, params: MethodParams) -> Any:
        from ftsweep.methods.adapter_layers import BottleneckAdapter, forward_hook

        for p in model.parameters():
            p.requires_grad_(False)
        p_: Any = params
        ref = next(model.parameters())
        for block in decoder_blocks(model):
            for site, attr in SITES[p_.placement]:
                sub = getattr(block, site, None)
                if sub is None:
                    raise FtsweepError(f"adapter: decoder block has no {site!r} module")
                adapter = BottleneckAdapter(
                    model.config.hidden_size, p_.adapter_dim, p_.activation, p_.dropout
                ).to(ref.device, ref.dtype)
                block.add_module(attr, adapter)
                sub.register_forward_hook(forward_hook(adapter))
        return model

    def save(self, model: Any, out_dir: Path) -> None:
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file(adapter_state(model), str(out_dir / WEIGHTS))
        (out_dir / CONFIG).write_text(json.dumps(saved_params(model), indent=2, sort_keys=True))

    def load(self, model: Any, params: MethodParams, art_dir: Path) -> Any:
        from safetensors.torch import load_file

        model = self.apply(model, params)
        state = load_file(str(Path(art_dir) / WEIGHTS))
        expected = adapter_state(model)
        if set(state) != set(expected):
            raise FtsweepError(
                f"adapter weights in {art_dir} do not fit this model and "
                f"params: {len(state)} tensors saved, {len(expected)} expected"
            )
        model.load_state_dict(state, strict=False)
        for p in model.parameters():
            p.requires_grad_(False)
        return model


def adapter_state(model: Any) -> dict[str, torch.Tensor]:
    """The adapters' tensors only, keyed by their names in the full model."""
    return {
        name: t.detach().contiguous().clone()
        for name, t in model.state_dict().items()
        if ".adapter_attn." in name or ".adapter_mlp." in name
    }


def saved_params(model: Any) -> dict[str, Any]:
    """What the JSON records: enough to see what the weights are without loading them."""
    block = decoder_blocks(model)[0]
    ad = cast("BottleneckAdapter", block.adapter_mlp)
    return {
        "method": "adapter",
        "adapter_dim": ad.down.out_features,
        "placement": "houlsby" if hasattr(block, "adapter_attn") else "pfeiffer",
        "activation": type(ad.act).__name__.lower(),
        "dropout": ad.dropout.p,
    }
