"""The eval block's generation options and answer extraction (eval.generation,
eval.answer_extraction), apart from config/schema.py to keep both short."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    """schema.Strict's rule (unknown keys are errors); schema.py imports this module."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


DEFAULT_MAX_NEW_TOKENS = 32


class Generation(_Strict):
    """How the final evaluation generates: greedy (the default) or sampled, n per example."""

    # Greedy decoding is deterministic and the fair default for comparing methods.
    do_sample: bool = Field(False, description="sample instead of greedy decoding")
    temperature: float = Field(1.0, gt=0.0, description="sampling temperature (do_sample)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass (do_sample)")
    # pass@k is reported for every k up to num_samples; majority vote needs several.
    num_samples: int = Field(1, ge=1, le=64, description="samples per eval example")
    max_new_tokens: int | None = Field(
        None, ge=1, le=4096, description=f"tokens per sample (default {DEFAULT_MAX_NEW_TOKENS})"
    )

    @model_validator(mode="after")
    def _sampling_needs_do_sample(self) -> Generation:
        if self.num_samples > 1 and not self.do_sample:
            raise ValueError(
                f"num_samples {self.num_samples} with greedy decoding gives {self.num_samples} "
                "identical samples; set do_sample: true, or num_samples: 1"
            )
        return self


class AnswerRegex(_Strict):
    regex: str = Field(description="a regular expression with one group: the answer")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        # The same rule as ftsweep.evaluators.extract.check_regex, kept here so that
        # config stays a leaf (importing the evaluators package pulls in sacrebleu).
        try:
            groups = re.compile(v).groups
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if groups != 1:
            raise ValueError(
                f"the regex needs exactly one capturing group (the answer), it has {groups}; "
                "e.g. 'answer is (\\S+)' (write other groups as (?:...))"
            )
        return v


def resolved_max_new_tokens(ecfg: dict[str, Any]) -> int:
    """Tokens per sample from an eval block as a dict (the worker's resolved config)."""
    gen = ecfg.get("generation") or {}
    return gen.get("max_new_tokens") or ecfg.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS
