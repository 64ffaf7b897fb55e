"""The evaluator interface: what one eval item looks like, and what scoring returns.

An evaluator turns a batch of eval items into metrics. Most evaluators score text
the model generated (exact match, F1, BLEU, chrF, pass@1); the loss evaluator is the
exception and works from per-example losses the worker computes itself
(``needs_generation = False``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class EvalExample:
    """One eval item after generation.

    ``prediction`` is the model's generation (the first sample when several are
    drawn), already cut at eos and, with ``eval.answer_extraction``, reduced to its
    answer; evaluators score it as given. ``samples`` holds every sample the same way
    (``prediction`` is ``samples[0]``); empty means the one prediction. ``extra`` is the
    raw data record, for the evaluators that need more than text (code tests,
    entry point, language).
    """

    example_id: str
    prompt: str
    reference: str
    prediction: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    samples: tuple[str, ...] = ()

    @property
    def all_samples(self) -> tuple[str, ...]:
        """Every sample; ``(prediction,)`` when only one was drawn."""
        return self.samples or (self.prediction,)


@dataclass
class EvalScores:
    """What one evaluator returns for one batch.

    ``aggregate`` maps each of the evaluator's metric names to its corpus value.
    ``per_example`` holds ``(example_id, metric, value)`` rows, in input order, so
    that two runs can be compared example by example (paired statistics).
    ``notes`` says how the scores were obtained where a reader must know it to trust
    them (pass_at_1 without OS isolation: ``{"sandbox": "none"}``); the worker
    records it in result.json as ``eval_notes[<evaluator>]``.
    """

    aggregate: dict[str, float]
    per_example: list[tuple[str, str, float]]
    notes: dict[str, str] = field(default_factory=dict)


class Evaluator(ABC):
    """Scores a batch of eval items.

    A subclass declares, as class attributes:

    * ``name`` — the registry key used in experiment files;
    * ``needs_generation`` — False for evaluators that do not read ``prediction``
      (the worker then skips generation for them);
    * ``scores_answers`` — False for evaluators that must see the raw generation even
      when ``eval.answer_extraction`` is set (pass_at_1 runs the program it wrote);
    * ``metrics`` — metric name -> True when higher is better;
    * ``Params`` — a pydantic model of its parameters (subclass ``Evaluator.Params``,
      so unknown keys are rejected);
    * ``aggregate`` — how the corpus value relates to the per-example rows: ``"mean"``
      (the default: it is their mean, so statistics over examples may average them) or
      ``"corpus"`` (BLEU, chrF: it is computed from per-example sufficient statistics
      summed over the corpus; such an evaluator implements ``example_stats`` and
      ``score_stats``, and its per-example rows are for reading, not for statistics)
      or ``"weighted"`` (loss: examples weigh by something their rows do not carry, so
      an average of the rows is not the corpus value, and the report says so);
    * ``bounds`` — metric name -> (lowest, highest) value it can take, None for no bound
      (accuracy-like metrics (0, 1), BLEU and chrF (0, 100), a loss (0, None)); the
      report clips intervals to them (a t-interval of a mean can reach past them) and
      says so. A metric left out is taken as unbounded.

    Every implementation guarantees:

    * **Deterministic**: the same examples and params give the same scores.
      (pass@1 is deterministic except for a program whose run time sits right at its
      timeout.)
    * **Never raises on a bad prediction**: empty, malformed or crashing output
      scores as a failure (0 for pass@1). It does raise ``ValueError`` on bad *input*
      — no examples, duplicate ids, a record missing what the evaluator needs —
      because that is a data bug, and scoring it would hide the bug.
    * **Complete, ordered per-example rows**: for each input example, in input order,
      one row per per-example metric, carrying the input's ``example_id``.
    * ``aggregate`` has exactly the keys of ``metrics_for(n)``, n the samples per
      example (``metrics`` for every evaluator whose metrics do not depend on n).
    """

    name: ClassVar[str]
    needs_generation: ClassVar[bool] = True
    scores_answers: ClassVar[bool] = True
    metrics: ClassVar[dict[str, bool]]
    aggregate: ClassVar[Literal["mean", "corpus", "weighted"]] = "mean"
    bounds: ClassVar[dict[str, tuple[float | None, float | None]]] = {}
    # True for an evaluator that scores the model on its own text file before and after
    # training (forgetting), not the eval split: the worker then computes probe losses.
    reads_probe: ClassVar[bool] = False

    class Params(BaseModel):
        """Parameters shared by all evaluators: none. Subclasses add theirs."""

        model_config = ConfigDict(extra="forbid", frozen=True)

    params: Params

    def __init__(self, params: Evaluator.Params | None = None) -> None:
        expected = type(self).Params
        if params is None:
            params = expected()
        elif not isinstance(params, expected):
            # A Params of another evaluator would silently drop its settings.
            raise TypeError(
                f"{type(self).__name__} needs {expected.__qualname__}, "
                f"got {type(params).__qualname__}"
            )
        self.params = params

    @classmethod
    def metrics_for(cls, num_samples: int) -> dict[str, bool]:
        """The metrics a run drawing ``num_samples`` samples per example gets.

        ``metrics`` is the evaluator's whole vocabulary (reports and searches look
        metric names up in it); an evaluator such as pass@k, whose metrics depend on
        the number of samples, narrows it here.
        """
        return dict(cls.metrics)

    @classmethod
    def input_files(cls, params: Mapping[str, Any]) -> dict[str, str]:
        """Files the evaluator reads, by name, from its raw ``params``: none by default.

        Paths are relative to the experiment file; the loader resolves them and puts
        their content fingerprints into the run id (``eval.<evaluator>.<name>``).
        """
        return {}

    @abstractmethod
    def score(self, examples: Sequence[EvalExample]) -> EvalScores:
        """Score ``examples``; see the class docstring for the contract."""

    def example_stats(
        self, predictions: Sequence[str], references: Sequence[str]
    ) -> list[list[float]]:
        """Per-example sufficient statistics (``aggregate = "corpus"`` only).

        Their column sums over any subset of examples, given to ``score_stats``, give
        that subset's corpus score; resampling examples (paired bootstrap) relies on it.
        """
        raise NotImplementedError(f"{self.name} aggregates by mean; it has no corpus stats")

    def score_stats(self, totals: Sequence[float]) -> float:
        """The corpus score from column sums of ``example_stats`` rows."""
        raise NotImplementedError(f"{self.name} aggregates by mean; it has no corpus stats")


def check_examples(examples: Sequence[EvalExample]) -> None:
    """Raise ValueError when a batch cannot be scored meaningfully.

    An empty batch has no mean, and duplicate ids would make per-example rows
    ambiguous for paired statistics.
    """
    if not examples:
        raise ValueError("no examples to score")
    counts = Counter(example.example_id for example in examples)
    duplicates = sorted(example_id for example_id, n in counts.items() if n > 1)
    if duplicates:
        shown = ", ".join(repr(d) for d in duplicates[:5])
        more = f" and {len(duplicates) - 5} more" if len(duplicates) > 5 else ""
        raise ValueError(f"duplicate example ids: {shown}{more}")


def mean_scores(metric: str, values: Sequence[tuple[str, float]]) -> EvalScores:
    """EvalScores for a metric whose corpus value is the mean of per-example values."""
    total = sum(value for _, value in values)
    return EvalScores(
        aggregate={metric: total / len(values)},
        per_example=[(example_id, metric, value) for example_id, value in values],
    )
