"""Trainable % counts bitsandbytes 4-bit weights at their unquantised size (issue 8, item 9).

bitsandbytes needs CUDA and is not installed on CPU machines; these fakes carry what
the counter reads from a real ``Params4bit``: its class name, packed uint8 data (two
weights per element) and a ``quant_state`` with the original shape.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from ftsweep.worker.setup import count_params, param_count


class Params4bit(torch.nn.Parameter):
    """Stands in for bitsandbytes.nn.Params4bit (matched by class name, as the real one)."""


def _packed(out_f: int, in_f: int, with_state: bool = True) -> Params4bit:
    p = Params4bit(torch.zeros(out_f * in_f // 2, 1, dtype=torch.uint8), requires_grad=False)
    p.quant_state = SimpleNamespace(shape=torch.Size([out_f, in_f])) if with_state else None
    return p


class LoraLinear(torch.nn.Module):
    """A frozen 64x48 base weight with a rank-4 adapter: LoRA and QLoRA's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(64, 48), requires_grad=False)
        self.lora_A = torch.nn.Parameter(torch.randn(4, 48))
        self.lora_B = torch.nn.Parameter(torch.zeros(64, 4))


def test_4bit_base_counts_as_its_unquantised_size():
    lora = LoraLinear()
    qlora = LoraLinear()
    qlora.weight = _packed(64, 48)
    assert qlora.weight.numel() == 64 * 48 // 2  # what was counted before: half the base
    assert count_params(qlora) == count_params(lora) == (4 * 48 + 64 * 4, 64 * 48 + 448)


def test_4bit_without_quant_state_counts_two_weights_per_byte():
    assert param_count(_packed(64, 48, with_state=False)) == 64 * 48
    # not quantised yet (still the float weight): counted as it is
    assert param_count(Params4bit(torch.zeros(64, 48), requires_grad=False)) == 64 * 48
    # any other parameter, 8-bit ones included, holds one weight per element
    assert (
        param_count(torch.nn.Parameter(torch.zeros(64, 48, dtype=torch.int8), requires_grad=False))
        == 64 * 48
    )
