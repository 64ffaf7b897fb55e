"""Shared glue for methods that are a peft config: build it, check it, apply it."""

from __future__ import annotations

from typing import Any

from ftsweep.methods.base import Method, MethodParams


class PeftMethod(Method):
    """A method defined by a peft config; subclasses implement ``peft_config``."""

    saves_adapter = True

    def peft_config(self, params: MethodParams) -> Any:  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} must define peft_config()")

    def check_peft(self, params: MethodParams) -> list[tuple[str, str]]:
        """Build the peft config so peft's own checks run before any training."""
        try:
            self.peft_config(params)
        except (TypeError, ValueError) as exc:
            return [("", f"peft rejects these parameters: {exc}")]
        return []

    def apply(self, model: Any, params: MethodParams) -> Any:
        from peft import get_peft_model

        return get_peft_model(model, self.peft_config(params))

    def save(self, model: Any, out_dir: Any) -> None:
        model.save_pretrained(out_dir, safe_serialization=True)
