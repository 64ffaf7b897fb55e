"""The Objective interface: *what* a run optimises, apart from *how* the model is
parameterised (the method).

Contract for implementations:

- ``families`` are the data families the objective learns from (``data.family``);
  validation refuses any other with the objectives that would take it.
- ``refused`` maps a method name to why this objective cannot train it (validation
  refuses the pair with that reason, before anything trains).
- ``config_problems`` names other settings the objective cannot train with (KTO needs
  batches of two or more), with the reason.
- ``head`` is the model the worker loads: ``causal_lm`` (every objective that
  generates) or ``score`` (a sequence-classification head: a reward model).
- ``prepare`` runs in the worker after the method, before parameters are counted: an
  objective that adds modules makes them trainable there.
- ``build_trainer`` runs in the worker, in every process, after the method has
  parameterised the model; it returns a transformers ``Trainer`` (or subclass, such as
  TRL's) built from ``training_arguments`` so the run directory, checkpoints, metrics
  log and callbacks work as for any run.
- ``config_problems`` (optional) says what else in a resolved run config this objective
  cannot train (its own parameters against the data or batch); validation reports each
  one at its key with file:line.
- ``finish`` runs after training, before evaluation and saving: it removes what only
  training needed (a reference adapter), so the artefact is the trained model only.
- Heavy imports (torch, transformers, TRL) happen inside the methods: validation
  imports this package to read the class attributes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Head = Literal["causal_lm", "score"]


@dataclass
class TrainContext:
    """What an objective needs to build its trainer (one run, in the worker)."""

    model: Any
    tok: Any
    cfg: dict[str, Any]
    paths: dict[str, str]
    run: Any  # ftsweep.rundir.RunDir
    callbacks: list[Any]
    method: Any  # the Method instance (methods/base.py)
    method_params: Any
    train_examples: list[Any]  # tokenised as sft reads the train split (worker/dataset.py)
    eval_dataset: Any | None  # a TokenDataset when the run evaluates during training

    @property
    def evaluates(self) -> bool:
        return self.eval_dataset is not None


@dataclass(frozen=True)
class ConfigIssue:
    """One reason an objective cannot train a run config: where, why, what would do."""

    key: tuple[str, ...]  # e.g. ("training", "grpo", "group_size")
    message: str
    value: Any
    valid: str


class Objective(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    families: ClassVar[tuple[str, ...]]
    refused: ClassVar[dict[str, str]] = {}
    head: ClassVar[Head] = "causal_lm"

    def prepare(self, model: Any) -> None:
        """Runs right after the method parameterised the model, before its parameters
        are counted: what the objective itself adds trains here (a new score head)."""
        return None

    @abstractmethod
    def build_trainer(self, ctx: TrainContext) -> Any:
        """The Trainer that optimises this objective for the run."""

    @classmethod
    def config_problems(cls, cfg: dict[str, Any]) -> list[ConfigIssue]:
        """Why this objective cannot train the resolved run config ``cfg`` (empty: it can)."""
        return []

    def finish(self, model: Any) -> None:
        """Drop what only training needed, so the saved artefact is the trained model."""
        return None
