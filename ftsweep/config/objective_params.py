"""Each training objective's own parameters: ``training.<objective>`` in the file.

Only the block of the run's ``training.objective`` is read (and hashed into its run id);
setting another objective's block is refused by TrainingBlock, so a typo never trains
silently with defaults. The objectives themselves are plugins in ``ftsweep/objectives``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ftsweep.config.strict import Strict


class DpoParams(Strict):
    """Direct Preference Optimization (TRL's DPOTrainer) on prompt/chosen/rejected pairs."""

    # How far the policy may move from the reference (the model as loaded): small beta
    # lets it drift further. 0.1 is the DPO paper's and TRL's default.
    beta: float = Field(0.1, gt=0.0)
    # sigmoid: the DPO paper's loss; ipo: IPO's squared loss (robust to deterministic
    # preferences); hinge: SLiC's; robust: cDPO-style, tolerant of flipped labels.
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"


class OrpoParams(Strict):
    """Odds Ratio Preference Optimization: SFT on chosen plus an odds-ratio penalty on
    rejected, with no reference model (so it can start from the base model)."""

    # λ in the ORPO paper (TRL's ``beta``): the weight of the odds-ratio term against
    # the chosen answers' NLL. 0.1 is the paper's and TRL's default.
    beta: float = Field(0.1, gt=0.0)


class KtoParams(Strict):
    """Kahneman-Tversky Optimization: learns from answers labelled desirable or not,
    unpaired (data.family: unpaired) or split out of preference pairs."""

    beta: float = Field(0.1, gt=0.0)  # as DPO's: how far from the reference the policy may go
    # Weights of the desirable / undesirable losses; the KTO paper advises keeping
    # desirable_weight * n_desirable / (undesirable_weight * n_undesirable) in [1, 4/3].
    desirable_weight: float = Field(1.0, gt=0.0)
    undesirable_weight: float = Field(1.0, gt=0.0)


class RewardParams(Strict):
    """A reward model: a scalar head trained so that chosen scores above rejected
    (Bradley-Terry loss, TRL's RewardTrainer)."""

    # Pulls the mean reward towards zero (InstructGPT's / TRL's centring term); None: off.
    center_rewards_coefficient: float | None = Field(None, gt=0.0)


Reward = Literal["exact_match", "pass_at_1"]
DEFAULT_REWARDS: tuple[Reward, ...] = ("exact_match",)


class GrpoParams(Strict):
    """Group Relative Policy Optimization with verifiable rewards (TRL's GRPOTrainer):
    the reward is the task's own checker, so no reward model is trained."""

    # Completions sampled per prompt; rewards are compared within the group.
    group_size: int = Field(4, ge=2)
    # KL coefficient against the starting model (TRL's beta); 0 drops the reference model.
    kl_coef: float = Field(0.04, ge=0.0)
    # The checkers whose scores sum to the reward: exact_match (instruction data, after
    # eval.answer_extraction) or pass_at_1 (code: the sandboxed unit tests' pass rate).
    rewards: list[Reward] = Field(default_factory=lambda: list(DEFAULT_REWARDS), min_length=1)
    max_completion_length: int = Field(64, ge=1)
    temperature: float = Field(1.0, gt=0.0)


# The block each objective reads (sft reads none).
PARAMS_OF: dict[str, type[Strict]] = {
    "dpo": DpoParams,
    "orpo": OrpoParams,
    "kto": KtoParams,
    "reward": RewardParams,
    "grpo": GrpoParams,
}
