"""The experiment file's schema (pydantic v2). Unknown keys are errors, never ignored.

Each block's defaults carry their reason in a comment: the file is the user interface.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelBlock(Strict):
    path: str = Field(description="local directory (config.json + safetensors) or hub id")
    revision: str | None = None
    # Remote code runs arbitrary Python from the model repo: only when the file says so.
    trust_remote_code: bool = False
    # Pickled (.bin) weights can execute code when loaded; safetensors only unless opted in.
    allow_pickle: bool = False


class DataBlock(Strict):
    family: Literal["instruction", "dialogue", "code"] = "instruction"
    train: str
    eval: str | None = None
    test: str | None = None
    # "auto" picks alpaca or alpaca_zh per record from its "lang" field.
    template: str = "auto"
    max_length: int = Field(256, ge=8, description="tokens per example after truncation")
    truncation_side: Literal["right", "left"] = "right"
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    # "error": the first malformed record stops validation with file:line.
    # "drop": malformed records are skipped and counted in the run's result.
    on_bad_record: Literal["error", "drop"] = "error"


class EarlyStopping(Strict):
    # None disables early stopping; otherwise stop after `patience` evals without improvement.
    patience: int | None = Field(None, ge=1)
    # An eval_loss must improve on the best by more than this to count as an improvement.
    threshold: float = Field(0.0, ge=0.0)


class TrainingBlock(Strict):
    lr: float = Field(1e-4, gt=0.0)
    epochs: float = Field(1.0, gt=0.0)
    # When set, overrides epochs: short fixed budgets make methods comparable in compute.
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1, description="per device")
    grad_accum: int = Field(1, ge=1)
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    optimizer: Literal["adamw", "sgd", "adafactor"] = "adamw"
    max_grad_norm: float = Field(1.0, ge=0.0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    gradient_checkpointing: bool = False
    eval_every: int | None = Field(None, ge=1, description="steps between eval-loss passes")
    logging_every: int = Field(10, ge=1)
    # Checkpoints let a killed run resume instead of starting over (invariant 4).
    checkpoint_every: int | None = Field(None, ge=1)
    early_stopping: EarlyStopping = EarlyStopping()

    @model_validator(mode="after")
    def _one_warmup(self) -> TrainingBlock:
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError("set warmup_steps or warmup_ratio, not both")
        if self.early_stopping.patience and not self.eval_every:
            raise ValueError("early_stopping.patience needs eval_every (evals to compare)")
        return self


class EvalBlock(Strict):
    split: Literal["eval", "test"] = "test"
    evaluators: list[str] = Field(default_factory=lambda: ["loss"])
    # The metric that ranks configurations in reports; must come from one of the evaluators.
    primary_metric: str = "eval_loss"
    max_new_tokens: int = Field(32, ge=1, le=4096)
    max_examples: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=1)
    evaluator_params: dict[str, dict[str, Any]] = Field(default_factory=dict)


class LaunchBlock(Strict):
    max_parallel: int = Field(1, ge=1, description="runs at once")
    num_processes: int = Field(1, ge=1, description="processes per run (DDP when > 1)")
    # Threads each process may use; on a 2-core machine 2 runs x 1 thread beats 1 x 2.
    threads_per_process: int | None = Field(None, ge=1)
    # Seconds without a heartbeat after which a run counts as lost.
    heartbeat_timeout_s: float = Field(60.0, gt=0)
    accelerate_config: str | None = Field(
        None, description="path to an `accelerate config` YAML (FSDP / DeepSpeed)"
    )


class ExperimentFile(Strict):
    experiment: str = Field(min_length=1, max_length=120)
    description: str = ""
    model: ModelBlock
    data: DataBlock
    training: TrainingBlock = TrainingBlock()
    eval: EvalBlock = EvalBlock()
    matrix: dict[str, Any]
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    launch: LaunchBlock = LaunchBlock()

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be unique")
        return v


# Blocks a matrix may address with dotted keys such as `training.lr`.
OVERRIDABLE_BLOCKS: dict[str, type[Strict]] = {
    "model": ModelBlock,
    "data": DataBlock,
    "training": TrainingBlock,
    "eval": EvalBlock,
}
