"""Each training objective's own parameters: ``training.<objective>`` in the file.

Only the block of the run's ``training.objective`` is read (and hashed into its run id);
setting another objective's block is refused by TrainingBlock, so a typo never trains
silently with defaults. The objectives themselves are plugins in ``ftsweep/objectives``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

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

    # Completions sampled per prompt (TRL's num_generations); each one's advantage is its
    # reward against its group's mean. training.batch_size counts completions, not
    # prompts, and batch_size x grad_accum x num_processes must be a multiple of it.
    group_size: int = Field(4, ge=2)
    # KL coefficient against the starting model (TRL's beta); 0 drops the reference
    # model (less memory). 0.04 was TRL's long-time default and DeepSeekMath's.
    kl_coef: float = Field(0.04, ge=0.0)
    # The checkers whose scores sum to the reward: exact_match (instruction data, after
    # eval.answer_extraction) or pass_at_1 (code: the share of the record's unit tests
    # that pass in the sandbox, so a half-right function earns half).
    rewards: list[Reward] = Field(
        default_factory=lambda: list(DEFAULT_REWARDS), min_length=1, max_length=2
    )
    # Tokens sampled per completion: a few past the longest reference answer, or the
    # policy is rewarded for answers it was never allowed to finish.
    max_completion_length: int = Field(64, ge=1)
    # Sampling temperature of the completions: 1 samples the policy as it is; lower
    # values give less diverse groups (more groups with equal rewards, no signal).
    temperature: float = Field(1.0, gt=0.0)
    # pass_at_1 reward: how the sampled programs run (as the pass_at_1 evaluator's
    # sandbox: bwrap isolation, or none, which must be asked for) and their time limit.
    sandbox: Literal["bwrap", "none"] = "bwrap"
    timeout_s: float = Field(5.0, gt=0.0, le=600.0)

    @field_validator("rewards")
    @classmethod
    def _once_each(cls, rewards: list[Reward]) -> list[Reward]:
        if len(set(rewards)) != len(rewards):
            raise ValueError(f"each reward at most once (each is logged by name), got {rewards}")
        return rewards


# The block each objective reads (sft reads none).
PARAMS_OF: dict[str, type[Strict]] = {
    "dpo": DpoParams,
    "orpo": OrpoParams,
    "kto": KtoParams,
    "reward": RewardParams,
    "grpo": GrpoParams,
}
