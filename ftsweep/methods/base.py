"""The Method interface: how a fine-tuning method validates itself and changes a model.

Contract for implementations:

- ``Params`` is a pydantic model with ``extra="forbid"``; every field has a default or
  is required, and its annotation tells the matrix whether a YAML list is one value
  (``list[...]`` fields such as ``target_modules``) or an axis of values.
- ``check`` is pure and cheap: it may inspect the model's config and module names
  (``ModelInfo``) but never loads weights. It returns every problem it finds, as
  (param path, message) pairs; it must never raise for bad user input.
- ``apply`` runs in the worker, in every process of the run, and returns the model to
  train. After it, exactly the parameters the method trains have requires_grad=True.
- ``save`` writes only safetensors into ``out_dir``.
- ``callbacks`` may return Trainer callbacks that change the model during training
  (progressive unfreezing); ``param_groups`` may return optimizer parameter groups
  (layer-wise learning rates). A method returning groups must include every parameter
  it will ever train, even those frozen at the start: the optimizer is built once.
- ``trains = False`` marks a method that only evaluates (the untrained baseline).
- ``cannot_shard`` says why FSDP cannot shard the method (empty: it can); validation
  refuses ``launch.distributed.strategy: fsdp`` with that reason.
- ``export_as`` tells ``ftsweep.export`` what the trained model can become: ``"model"``
  (``load`` already returns a plain transformers model), ``"merged"`` (a peft adapter
  that ``merge_and_unload`` folds into plain weights) or ``"adapter"`` (extra modules or
  virtual tokens that cannot become plain weights).
"""

from __future__ import annotations

import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

# What ftsweep.export can turn a trained model into (see the contract above).
ExportAs = Literal["model", "merged", "adapter"]


class MethodParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ModelInfo:
    """What ``check`` may know about the base model without loading its weights."""

    model_type: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    linear_module_names: frozenset[str] = field(default_factory=frozenset)  # leaf names
    # Full dotted parameter names ("model.layers.0.mlp.up_proj.weight"). Empty when the
    # builder did not collect them: checks that need them then skip, never fail.
    param_names: frozenset[str] = field(default_factory=frozenset)


class Method(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams
    trains: ClassVar[bool] = True
    # True when `save` writes a peft adapter rather than full weights.
    saves_adapter: ClassVar[bool] = False
    export_as: ClassVar[ExportAs] = "model"
    # Why FSDP cannot shard this method, in words for the user; "" when it can.
    cannot_shard: ClassVar[str] = ""

    def check(self, params: MethodParams, info: ModelInfo) -> list[tuple[str, str]]:
        """Problems with these params on this model: [(param, message)]. Default: none."""
        return []

    @abstractmethod
    def apply(self, model: Any, params: MethodParams) -> Any:
        """Return the model prepared for training with this method."""

    def save(self, model: Any, out_dir: Path) -> None:
        model.save_pretrained(out_dir, safe_serialization=True)

    def load_kwargs(self, params: MethodParams) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments (e.g. a quantization_config). Default: none."""
        return {}

    def load(self, model: Any, params: MethodParams, art_dir: Path) -> Any:
        """Rebuild the trained model from the base model and what ``save`` wrote.

        Default: a peft adapter when ``saves_adapter``, else full weights in art_dir.
        """
        if self.saves_adapter:
            from peft import PeftModel

            return PeftModel.from_pretrained(model, art_dir)
        from transformers import AutoModelForCausalLM

        # "auto": the dtype the weights were saved in, which is the one they were evaluated in
        return AutoModelForCausalLM.from_pretrained(art_dir, use_safetensors=True, dtype="auto")

    def callbacks(self, params: MethodParams, model: Any) -> list[Any]:
        """Trainer callbacks this method needs during training. Default: none."""
        return []

    def param_groups(self, params: MethodParams, model: Any, lr: float) -> list[dict] | None:
        """Optimizer parameter groups, or None to let the Trainer build them."""
        return None

    @classmethod
    def list_fields(cls) -> frozenset[str]:
        """Params whose value is itself a list: a YAML list there is one value, not an axis."""
        return frozenset(
            name for name, f in cls.Params.model_fields.items() if annotation_is_list(f.annotation)
        )


def annotation_is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(annotation_is_list(a) for a in typing.get_args(annotation))
    return annotation in (list, tuple)
