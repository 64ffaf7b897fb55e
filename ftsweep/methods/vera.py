"""VeRA through peft: frozen random low-rank matrices shared by all layers, trained scales.

Shapes: early VeRA required every target to have the same shape, because A and B are
shared. peft 0.21 sizes the shared matrices to the largest (out, in) over the targets and
slices them per layer (``VeraModel._find_dim``), so mixed shapes (q_proj 64x64 next to
up_proj 172x64) are accepted and nothing needs checking here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ftsweep.methods import register
from ftsweep.methods.base import MethodParams
from ftsweep.methods.peft_common import PeftMethod


class VeraParams(MethodParams):
    # The paper's default: a high rank costs nothing trainable, A and B are frozen.
    r: int = Field(256, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    d_initial: float = Field(0.1, gt=0, description="initial value of the trained d vector")
    # Fixed seed for the shared random matrices: they are regenerated from it on load.
    projection_prng_key: int = 0
    # Save A and B with the adapter too: bigger artefact, but independent of torch's RNG.
    save_projection: bool = True
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "v_proj"]
    )


@register
class Vera(PeftMethod):
    name = "vera"
    description = "VeRA (peft): shared frozen random projections, trained scaling vectors"
    Params = VeraParams
    export_as = "merged"

    def peft_config(self, params: Any) -> Any:
        from peft import TaskType, VeraConfig

        return VeraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=params.r,
            vera_dropout=params.dropout,
            d_initial=params.d_initial,
            projection_prng_key=params.projection_prng_key,
            save_projection=params.save_projection,
            target_modules=params.target_modules,
        )
