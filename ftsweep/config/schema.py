"""The experiment file's schema (pydantic v2). Unknown keys are errors, never ignored.

Each block's defaults carry their reason in a comment: the file is the user interface.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

# Your own data's shape: field names, mixture sources, Jinja templates (data_schema.py).
from ftsweep.config.data_schema import DataSource, FieldMap, PromptTemplate
from ftsweep.config.generation import AnswerRegex, Generation, resolved_max_new_tokens
from ftsweep.config.objective_params import (
    PARAMS_OF,
    DpoParams,
    GrpoParams,
    KtoParams,
    OrpoParams,
    RewardParams,
)
from ftsweep.config.strict import Strict


class FromRun(Strict):
    """Start from another run's trained weights (a stage; docs/experiments.md "Stages")."""

    # The parent experiment's file: a path relative to this file, or a bare name read as
    # <this file's directory>/<name>.yaml.
    experiment: str = Field(min_length=1)
    # best: the parent's best completed run, chosen on its validation split (config/stages.py
    # says how); or one of its run ids.
    select: str = Field("best", min_length=1)


class ModelBlock(Strict):
    # With from_run, path may be left out: the parent's base model is used (a path given
    # must be that same model).
    path: str = Field(description="local directory (config.json + safetensors) or hub id")
    revision: str | None = None
    # Remote code runs arbitrary Python from the model repo: only when the file says so.
    trust_remote_code: bool = False
    # Pickled (.bin) weights can execute code when loaded; safetensors only unless opted in.
    allow_pickle: bool = False
    # The dtype the weights are loaded (and trained) in. auto: bf16 when
    # training.precision is bf16, else fp32. bf16 also loads on CPU (torch has bf16 CPU
    # kernels; slower than fp32 there, but it is what a bf16 recipe trains); fp16 needs a
    # CUDA GPU (CPU fp16 kernels are incomplete and fp16 weights need a loss scaler).
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    # Attention kernel; None: transformers' default (sdpa where the model supports it).
    # flash_attention_2 needs a CUDA GPU, the flash-attn package and bf16/fp16 weights.
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = None
    # A later stage (e.g. DPO after SFT) starts from a parent run's trained weights,
    # merged into plain weights when the parent trained a peft adapter.
    from_run: FromRun | None = None


class Cleaning(Strict):
    """Applied to the text fields of every record before tokenisation; counts are recorded."""

    strip_control: bool = True  # control characters break tokenizers and leak from scraping
    normalize_whitespace: bool = False  # off: code and poems care about their whitespace
    drop_empty: bool = True
    # Off by default: in small task spaces repeats are the intended frequency (75% of the
    # shipped instruction train set). Applied to training data only.
    drop_duplicates: bool = False
    max_chars: int | None = Field(None, ge=1, description="drop records longer than this")


class HubSource(Strict):
    """A data set on the Hugging Face hub, read through `datasets` (needs a network)."""

    name: str
    config: str | None = None
    revision: str | None = None
    train_split: str = "train"
    eval_split: str | None = None
    test_split: str | None = None


class DataBlock(Strict):
    # preference: {prompt, chosen, rejected} pairs (dpo, orpo, kto, reward); unpaired:
    # {prompt, completion, label: true/false} answers, for training.objective: kto.
    family: Literal["instruction", "dialogue", "code", "preference", "unpaired"] = "instruction"
    # Local files (.jsonl, .json, .csv, .parquet), relative to the experiment file; train
    # may also be a mixture: a list of {path, weight, name, fields} sources...
    train: str | list[DataSource] | None = Field(None, union_mode="left_to_right")
    eval: str | None = None
    test: str | None = None
    # ...or a hub data set instead of local files.
    hub: HubSource | None = None
    # Your field names, when they are not the shipped formats' (MetaMathQA: query/response).
    fields: FieldMap | None = None
    # With no eval file: hold out this fraction of train as eval, with a fixed seed.
    eval_fraction: float | None = Field(None, gt=0.0, lt=1.0)
    split_seed: int = 0
    clean: Cleaning = Cleaning()
    # Concatenate examples into max_length blocks: fewer pad tokens, faster epochs.
    packing: bool = False
    # Loss on the answer only (prompt tokens masked); false trains on every token.
    completion_only_loss: bool = True
    # "auto" picks alpaca or alpaca_zh per record from its "lang" field; "chat" renders
    # instruction records with the tokenizer's chat template; a {prompt, completion}
    # mapping is your own Jinja template. Dialogue data always uses the chat template.
    template: str | PromptTemplate = "auto"
    max_length: int = Field(256, ge=8, description="tokens per example after truncation")
    truncation_side: Literal["right", "left"] = "right"
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    # "error": the first malformed record stops validation with file:line.
    # "drop": malformed records are skipped and counted in the run's result.
    on_bad_record: Literal["error", "drop"] = "error"

    @model_validator(mode="after")
    def _one_source(self) -> DataBlock:
        if (self.train is None) == (self.hub is None):
            raise ValueError(
                "set data.train (a local file) or data.hub (a hub data set), one of them"
            )
        if self.eval_fraction is not None and (self.eval or (self.hub and self.hub.eval_split)):
            raise ValueError("eval_fraction splits train when there is no eval set; one is given")
        if isinstance(self.train, list):
            if not self.train:
                raise ValueError("data.train is an empty list; a mixture needs a source")
            if self.eval_fraction is not None:
                raise ValueError("eval_fraction cannot split a mixture; give data.eval a file")
            labels = [s.label for s in self.train]
            twice = sorted({x for x in labels if labels.count(x) > 1})
            if twice:
                raise ValueError(
                    f"mixture sources share the name {', '.join(twice)}; give each its own name"
                )
        return self


class EarlyStopping(Strict):
    # None disables early stopping; otherwise stop after `patience` evals without improvement.
    patience: int | None = Field(None, ge=1)
    # An eval_loss must improve on the best by more than this to count as an improvement.
    threshold: float = Field(0.0, ge=0.0)


class TrainingBlock(Strict):
    # What is optimised (ftsweep/objectives): sft (next-token loss on the answer), dpo /
    # orpo / reward (preference pairs), kto (desirable / undesirable answers), grpo
    # (sampled answers scored by the task's checker). Not part of the run id while it is
    # sft, so runs from before the objective existed keep their ids; only the block of
    # the chosen objective is (config/objective_params.py).
    objective: Literal["sft", "dpo", "orpo", "kto", "reward", "grpo"] = "sft"
    dpo: DpoParams = DpoParams()
    orpo: OrpoParams = OrpoParams()
    kto: KtoParams = KtoParams()
    reward: RewardParams = RewardParams()
    grpo: GrpoParams = GrpoParams()
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
    # adamw_8bit needs bitsandbytes and a CUDA GPU.
    optimizer: Literal["adamw", "sgd", "adafactor", "adamw_8bit"] = "adamw"
    # Batches of similar lengths waste less compute on padding.
    group_by_length: bool = False
    # NEFTune: uniform noise on input embeddings, scaled alpha/sqrt(L*d); None disables it.
    neftune_alpha: float | None = Field(None, gt=0.0)
    max_grad_norm: float = Field(1.0, ge=0.0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    gradient_checkpointing: bool = False
    eval_every: int | None = Field(None, ge=1, description="steps between eval-loss passes")
    # steps: an eval-loss pass every eval_every steps (none without it); epoch: one at the
    # end of every epoch (transformers' eval_strategy), eval_every then unset.
    eval_strategy: Literal["steps", "epoch"] = Field(
        "steps", description="eval loss every eval_every steps, or at each epoch's end"
    )
    logging_every: int = Field(10, ge=1)
    # Checkpoints let a killed run resume instead of starting over (invariant 4).
    checkpoint_every: int | None = Field(None, ge=1)
    # steps: every checkpoint_every steps; epoch: at each epoch's end (save_strategy).
    checkpoint_strategy: Literal["steps", "epoch"] = Field(
        "steps", description="checkpoint every checkpoint_every steps, or at each epoch's end"
    )
    early_stopping: EarlyStopping = EarlyStopping()

    @model_validator(mode="after")
    def _one_warmup(self) -> TrainingBlock:
        for name, params in PARAMS_OF.items():
            if self.objective != name and getattr(self, name) != params():
                raise ValueError(
                    f"training.{name} is set but training.objective is {self.objective!r}; "
                    f"set training.objective: {name} or remove training.{name}"
                )
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError("set warmup_steps or warmup_ratio, not both")
        if self.eval_strategy == "epoch" and self.eval_every:
            raise ValueError("eval_strategy: epoch evaluates at each epoch's end; unset eval_every")
        if self.checkpoint_strategy == "epoch" and self.checkpoint_every:
            raise ValueError(
                "checkpoint_strategy: epoch saves at each epoch's end; unset checkpoint_every"
            )
        if self.early_stopping.patience and not self.evaluates:
            raise ValueError(
                "early_stopping.patience needs evals to compare: set eval_every "
                "or eval_strategy: epoch"
            )
        return self

    @property
    def evaluates(self) -> bool:
        """Whether training computes an eval loss along the way (steps or epochs)."""
        return bool(self.eval_every) or self.eval_strategy == "epoch"


class EvalBlock(Strict):
    split: Literal["eval", "test"] = "test"
    evaluators: list[str] = Field(default_factory=lambda: ["loss"])
    # The metric that ranks configurations in reports; must come from one of the evaluators.
    primary_metric: str = "eval_loss"
    # Shorthand for generation.max_new_tokens (older files); set one of the two.
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    generation: Generation = Generation()
    # Compare only the answer: a named extractor (gsm8k "#### N", last_number, boxed
    # \boxed{N}) or {regex: "...(group)..."}; applied to samples and references.
    answer_extraction: (
        Annotated[
            Annotated[Literal["gsm8k", "last_number", "boxed"], Tag("name")]
            | Annotated[AnswerRegex, Tag("regex")],
            # One branch by the value's shape, so an error names only what was meant.
            Discriminator(lambda v: "name" if isinstance(v, str) else "regex"),
        ]
        | None
    ) = None
    max_examples: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=1)
    evaluator_params: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_token_budget(self) -> EvalBlock:
        both = (self.max_new_tokens, self.generation.max_new_tokens)
        if None not in both and both[0] != both[1]:
            raise ValueError(
                f"eval.max_new_tokens ({both[0]}) and eval.generation.max_new_tokens "
                f"({both[1]}) disagree; set one of them"
            )
        return self

    @property
    def new_tokens(self) -> int:
        """Tokens generated per sample, whichever key set it."""
        return resolved_max_new_tokens(self.model_dump())


class Distributed(Strict):
    """How a multi-process run shards itself; written into an accelerate config per run."""

    # ddp replicates the model; fsdp and deepspeed shard it (GPU only).
    strategy: Literal["ddp", "fsdp", "deepspeed"] = "ddp"
    zero_stage: Literal[2, 3] = 2  # deepspeed only
    offload: bool = False  # optimizer state (and ZeRO-3 params) to CPU memory
    fsdp_sharding: Literal["FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD"] = "FULL_SHARD"


class SlurmOptions(Strict):
    """`sbatch` options of the slurm executor (docs/cluster.md)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str = "1:00:00"  # each run's time limit (sbatch --time)
    gpus_per_run: int | None = Field(None, ge=1, description="sbatch --gpus (default: none)")
    cpus_per_task: int | None = Field(None, ge=1)
    mem: str | None = None  # e.g. 16G
    constraint: str | None = None
    # More `#SBATCH` lines, as they would be written after "#SBATCH ".
    extra_sbatch: list[str] = Field(default_factory=list)
    # Shell lines run before the worker: module load, venv activation, ...
    setup: str = ""
    # Seconds before the time limit at which Slurm signals the job: the worker writes a
    # checkpoint and the job requeues itself, then resumes from it.
    signal_grace_s: int = Field(60, ge=10)
    max_requeues: int = Field(3, ge=0)
    poll_interval_s: float = Field(2.0, gt=0)

    @field_validator("extra_sbatch")
    @classmethod
    def _one_line_each(cls, v: list[str]) -> list[str]:
        for line in v:
            if "\n" in line or "\r" in line:
                raise ValueError(f"an extra #SBATCH line is one line: {line!r}")
        return v


DEFAULT_MAX_RUNS = 10_000


class LaunchBlock(Strict):
    # Where runs execute: local (this machine) or slurm (a cluster); `--executor` overrides.
    executor: Literal["local", "slurm"] = "local"
    slurm: SlurmOptions = SlurmOptions()
    # Runs at once. Default: 1 on CPU; on GPUs as many as fit (gpus / gpus_per_run).
    max_parallel: int | None = Field(None, ge=1, description="runs at once")
    # A matrix with more runs than this is refused before it is expanded: a typo such as
    # a 1000-value axis would otherwise plan a million runs. `--max-runs N` overrides.
    max_runs: int = Field(DEFAULT_MAX_RUNS, ge=1, description="largest matrix accepted (runs)")
    # Local GPUs to use: "all" visible ones, or a list of device ids.
    gpus: Literal["all"] | list[int] = "all"
    # GPUs per run (default: num_processes). A fraction shares a GPU by memory: 0.5 puts
    # two single-process runs on each GPU.
    gpus_per_run: float | None = Field(None, gt=0)
    num_processes: int = Field(1, ge=1, description="processes per run (DDP when > 1)")
    # Machines one run spans (an executor that can: slurm). num_processes is the total,
    # split evenly: num_machines 2 with num_processes 8 is 4 ranks on each of 2 nodes.
    num_machines: int = Field(1, ge=1, description="nodes per run (multi-node DDP)")
    # Single-process local runs on CPU start from a server that has imported torch /
    # transformers / peft once (a fresh forked process per run): seconds less per run.
    # Never on a CUDA machine: a process forked after CUDA initialisation cannot use it.
    fork_server: bool = True
    # Threads each process may use; on a 2-core machine 2 runs x 1 thread beats 1 x 2.
    threads_per_process: int | None = Field(None, ge=1)
    # Seconds without a heartbeat after which a run counts as lost.
    heartbeat_timeout_s: float = Field(60.0, gt=0)
    # Times a run starts again, from its last checkpoint, after its worker was killed
    # (SIGKILL: the out-of-memory killer, a node hiccup; SIGSEGV; Slurm NODE_FAIL) without
    # recording a failure of its own. 1 by default: such deaths are often transient and a
    # retry repeats only the steps since the last checkpoint; a second death in a row
    # (an OOM that recurs at the same step) stays failed instead of burning the budget.
    # A failure the worker records itself (an exception, the NaN guard) or a stop asked
    # for (SIGTERM, `ftsweep cancel`) is never retried automatically; pruned runs never.
    max_retries: int = Field(1, ge=0, description="automatic retries of a killed worker")
    # Seconds before the first retry; doubled for each further one (memory may free up).
    retry_backoff_s: float = Field(10.0, ge=0)
    distributed: Distributed = Distributed()
    accelerate_config: str | None = Field(
        None, description="path to your own `accelerate config` YAML; replaces `distributed`"
    )

    @model_validator(mode="after")
    def _gpu_shares(self) -> LaunchBlock:
        g = self.gpus_per_run
        if g is not None and g >= 1 and g != int(g):
            raise ValueError(f"gpus_per_run above 1 is a whole number of GPUs, got {g}")
        if g is not None and g < 1 and self.num_processes > 1:
            raise ValueError(
                "a GPU can be shared (gpus_per_run < 1) only by single-process "
                f"runs; this run has num_processes {self.num_processes}"
            )
        if g is not None and g >= 1 and g < self.num_processes:
            raise ValueError(
                f"each process needs its own GPU: gpus_per_run {g:g} is less "
                f"than num_processes {self.num_processes}"
            )
        m = self.num_machines
        if m > 1 and self.num_processes % m:
            raise ValueError(
                f"num_processes {self.num_processes} (the total over the run's "
                f"machines) does not split evenly over num_machines {m}"
            )
        gpus = self.slurm.gpus_per_run
        if m > 1 and gpus is not None and gpus % m:
            raise ValueError(
                f"slurm.gpus_per_run {gpus} (the run's total) does not split "
                f"evenly over num_machines {m}"
            )
        return self


SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc", "nsga2", "grid")
# Samplers that can optimise several objectives at once (a Pareto front).
MULTI_OBJECTIVE_SAMPLERS = ("tpe", "random", "gp", "qmc", "nsga2", "grid")
PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "wilcoxon", "none")


class Objective(Strict):
    # A metric of the final evaluation (exact_match, eval_loss, bleu, ...) or a cost the
    # run records (peak_memory_mb, trainable_params, train_time_s, artifact_size_mb, ...).
    metric: str
    # Default: the direction the evaluator declares for the metric (or the cost's own).
    direction: Literal["maximize", "minimize"] | None = None


class PrunerBlock(Strict):
    """Stops bad trials early from their eval loss (logged every training.eval_every
    steps, or at each epoch's end with training.eval_strategy: epoch).

    Per-method overrides (prompt-learning methods start slower) go in the method's
    entry of the space as ``pruner: {n_warmup_steps: ...}``.
    """

    type: Literal["median", "percentile", "successive_halving", "hyperband", "wilcoxon", "none"] = (
        "median"
    )
    # median / percentile / wilcoxon: trials finished before pruning may start.
    n_startup_trials: int = Field(2, ge=0)
    # median / percentile: steps of a trial before it may be pruned.
    n_warmup_steps: int = Field(0, ge=0)
    percentile: float = Field(25.0, gt=0.0, lt=100.0)  # percentile only
    # successive_halving / hyperband: steps every trial gets (its grace period).
    min_resource: int = Field(1, ge=1)
    reduction_factor: int = Field(3, ge=2)
    # wilcoxon: prune when the trial is worse than the best with this p-value.
    p_threshold: float = Field(0.1, gt=0.0, lt=1.0)


class PrunerOverride(Strict):
    n_warmup_steps: int | None = Field(None, ge=0)
    min_resource: int | None = Field(None, ge=1)


class SearchBlock(Strict):
    """An Optuna study over methods and their hyperparameters (docs/experiments.md)."""

    sampler: Literal["tpe", "random", "gp", "cmaes", "qmc", "nsga2", "grid"] = "tpe"
    seed: int = 0
    # Trials per method with budget per_method (every method gets the same number);
    # trials in all with budget shared. A relaunch with a larger value extends the study.
    n_trials: int | None = Field(None, ge=1)
    # Seconds after which no new trial is asked for in this launch (in-flight trials
    # finish; with per_method the last round is completed so budgets stay equal).
    timeout: float | None = Field(None, gt=0)
    max_parallel: int | None = Field(
        None, ge=1, description="trials at once (default: launch.max_parallel)"
    )
    objectives: list[Objective] = Field(
        default_factory=lambda: [Objective(metric="eval_loss", direction="minimize")], min_length=1
    )
    budget: Literal["per_method", "shared"] = "per_method"
    # tpe / gp: trials sampled at random before the model-based sampler takes over
    # (Optuna's default of 10 would leave a small per-method budget all random).
    n_startup_trials: int = Field(3, ge=0)
    # nsga2: individuals per generation (Optuna's default, 50, exceeds small budgets).
    population_size: int = Field(50, ge=2)
    # Each seed is one run; the trial's value is the mean over its runs. The first seed
    # decides pruning; the others train only if it completes.
    seeds_per_trial: int = Field(1, ge=1)
    pruner: PrunerBlock = PrunerBlock(type="none")
    # Complete grid runs (matrix) of this experiment are told to the study first.
    warm_start: bool = False
    # A worker waits this long for the launcher's prune decision before going on.
    decision_timeout_s: float = Field(300.0, gt=0)
    # method: [ {name: lora, r: {int: [4, 32], step: 4}, training.lr: {float: [1e-4, 1e-2],
    # log: true}}, ...] plus shared dotted keys; checked by ftsweep.search.space.
    space: dict[str, Any]

    @model_validator(mode="after")
    def _stops(self) -> SearchBlock:
        if self.n_trials is None and self.timeout is None and self.sampler != "grid":
            raise ValueError("a search needs n_trials, timeout or both (when to stop)")
        if len(self.objectives) > 1:
            if self.sampler not in MULTI_OBJECTIVE_SAMPLERS:
                raise ValueError(
                    f"sampler {self.sampler!r} optimises one objective; with "
                    f"{len(self.objectives)} objectives use one of "
                    f"{', '.join(MULTI_OBJECTIVE_SAMPLERS)}"
                )
            if self.pruner.type != "none":
                raise ValueError(
                    "pruning needs one objective (Optuna cannot prune a "
                    "multi-objective study); set pruner.type: none"
                )
        names = [o.metric for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives repeat a metric: {names}")
        return self


class ReportBlock(Strict):
    """Settings of `ftsweep report` (never part of a run's config, so never its id)."""

    # Peak device memory (MB) a config may use to be "best under the memory budget";
    # `ftsweep report --memory-budget-mb` overrides it. None: the card says none was given.
    memory_budget_mb: float | None = Field(None, gt=0)


class ExperimentFile(Strict):
    experiment: str = Field(min_length=1, max_length=120)
    description: str = ""
    model: ModelBlock
    data: DataBlock
    training: TrainingBlock = TrainingBlock()
    eval: EvalBlock = EvalBlock()
    # A grid (matrix), a search, or both: the grid's runs train first, and a search with
    # warm_start learns from them.
    matrix: dict[str, Any] | None = None
    search: SearchBlock | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    launch: LaunchBlock = LaunchBlock()
    report: ReportBlock = ReportBlock()

    @model_validator(mode="after")
    def _grid_or_search(self) -> ExperimentFile:
        if self.matrix is None and self.search is None:
            raise ValueError("an experiment needs a matrix (a grid), a search, or both")
        if self.search is not None and self.search.seeds_per_trial > len(self.seeds):
            raise ValueError(
                f"search.seeds_per_trial is {self.search.seeds_per_trial} but "
                f"seeds lists only {len(self.seeds)}; a trial's runs take the first "
                "seeds_per_trial seeds"
            )
        return self

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
