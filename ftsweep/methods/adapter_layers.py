"""The bottleneck adapter module itself (torch), apart from ``adapter.py`` so that the
method registers, and experiment files validate, without importing torch."""

from __future__ import annotations

from typing import Any

import torch

ACTIVATIONS = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU}


class BottleneckAdapter(torch.nn.Module):
    """x + up(dropout(act(down(x)))); up starts at zero, so the block starts as identity."""

    def __init__(self, hidden: int, dim: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.down = torch.nn.Linear(hidden, dim)
        self.act = ACTIVATIONS[activation]()
        self.dropout = torch.nn.Dropout(dropout)
        self.up = torch.nn.Linear(dim, hidden)
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.dropout(self.act(self.down(x))))


def forward_hook(adapter: BottleneckAdapter) -> Any:
    def apply_adapter(module: Any, args: Any, output: Any) -> Any:
        if isinstance(output, tuple):  # attention returns (hidden, weights, ...)
            return (adapter(output[0]), *output[1:])
        return adapter(output)

    return apply_adapter
