"""(IA)^3 through peft: trained per-channel scaling vectors on keys, values and the MLP."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ftsweep.methods import register
from ftsweep.methods.base import MethodParams, ModelInfo
from ftsweep.methods.peft_common import PeftMethod, check_targets


class Ia3Params(MethodParams):
    # The paper's placement for decoder models: keys, values and the MLP's last projection.
    target_modules: list[str] = Field(default_factory=lambda: ["k_proj", "v_proj", "down_proj"])
    # Feed-forward targets are scaled on their input rather than their output (the paper).
    feedforward_modules: list[str] = Field(default_factory=lambda: ["down_proj"])


@register
class Ia3(PeftMethod):
    name = "ia3"
    description = "(IA)^3 (peft): learned scaling vectors on attention and MLP activations"
    Params = Ia3Params
    export_as = "merged"

    def peft_config(self, params: Any) -> Any:
        from peft import IA3Config, TaskType

        return IA3Config(
            task_type=TaskType.CAUSAL_LM,
            target_modules=params.target_modules,
            feedforward_modules=params.feedforward_modules,
        )

    def check(self, params: Any, info: ModelInfo) -> list[tuple[str, str]]:
        problems = self.check_peft(params) + check_targets(params.target_modules, info)
        for name in params.feedforward_modules:
            if name not in params.target_modules:
                problems.append(
                    (
                        "feedforward_modules",
                        f"{name!r} is not in target_modules; every feed-forward "
                        "module must also be a target",
                    )
                )
        return problems
