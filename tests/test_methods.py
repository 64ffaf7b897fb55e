"""One conformance suite for every CPU-capable fine-tuning method (STYLE 5), plus the
method-specific behaviour: unfreezing schedules, layer-wise lrs, checks, export.

Everything runs in-process, no accelerate launch (tests/test_launch.py covers that). The
conformance suite trains every method on the shipped pretrained model (models/tiny-base,
4 blocks, tied embeddings); the method-specific tests use a tiny random Llama with 3
blocks and untied embeddings, where head and embeddings are separate stages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from transformers import AutoModelForCausalLM, TrainerControl, TrainerState

from ftsweep.errors import FtsweepError
from ftsweep.methods import METHODS, get_method
from ftsweep.methods.base import ModelInfo
from tests.conftest import MODEL

VOCAB = 256
LAYERS = 3
STEPS = 24
# name → (params, lr). lrs are what makes each method move in STEPS steps on one batch.
CASES: dict[str, tuple[dict[str, Any], float]] = {
    "base": ({}, 0.0),
    "full": ({}, 1e-3),
    "lora": ({"r": 4, "target_modules": "all-linear"}, 1e-2),
    "dora": ({"r": 4}, 1e-2),
    "rslora": ({"r": 4}, 1e-2),
    "adalora": ({"init_r": 6, "target_r": 3, "tinit": 4, "tfinal": 4, "deltaT": 2}, 1e-2),
    "ia3": ({}, 3e-2),
    "loha": ({"r": 4}, 1e-2),
    "lokr": ({"r": 4}, 1e-2),
    "vera": ({"r": 32, "target_modules": ["q_proj", "v_proj", "up_proj"]}, 3e-2),
    "prompt": ({"num_virtual_tokens": 4, "init": "text", "init_text": "t1 t2 t3"}, 3e-2),
    "ptuning": ({"num_virtual_tokens": 4, "encoder_hidden_size": 32}, 1e-2),
    "prefix": ({"num_virtual_tokens": 4}, 3e-2),
    "llama_adapter": ({"adapter_len": 4, "adapter_layers": 2}, 3e-2),
    "freeze": ({"train_top_n": 1}, 1e-3),
    "progressive": ({"unfreeze_every": {"steps": 6}, "layer_lr_decay": 0.5}, 1e-3),
    "adapter": ({"adapter_dim": 8, "placement": "houlsby"}, 1e-2),
}
GPU_ONLY = {"qlora"}
# Methods whose trained params are a strict subset of the model's parameters.
PARTIAL = set(CASES) - {"base", "full"}


def test_every_registered_method_is_covered() -> None:
    assert set(METHODS) == set(CASES) | GPU_ONLY


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """Tiny matmuls on 2 shared cores: one thread is ~100x faster than two spinning ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved random Llama + word-level tokenizer; the shipped one may not exist yet."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny")
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"t{i}": i + 3 for i in range(VOCAB - 3)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>"
    ).save_pretrained(out)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def shipped() -> Path:
    """The shipped pretrained model: the conformance suite trains every method on it."""
    return MODEL


def fresh(tiny: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(tiny, use_safetensors=True)


def info_for(tiny: Path) -> ModelInfo:
    """What config/checks.py:model_info() builds (plus param_names), from a meta model."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    linear = {
        n.rsplit(".", 1)[-1]
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n != "lm_head"
    }
    return ModelInfo(
        model_type=cfg.model_type,
        num_layers=cfg.num_hidden_layers,
        hidden_size=cfg.hidden_size,
        num_attention_heads=cfg.num_attention_heads,
        linear_module_names=frozenset(linear),
        param_names=frozenset(n for n, _ in model.named_parameters()),
    )


BATCH = torch.randint(3, VOCAB, (4, 12), generator=torch.Generator().manual_seed(1))


def logits(model: Any) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=BATCH).logits[:, -BATCH.shape[1] :, :]


def drive(callbacks: list[Any], event: str, state: TrainerState) -> None:
    for cb in callbacks:
        getattr(cb, event)(None, state, TrainerControl())


def train(method: Any, params: Any, model: Any, lr: float) -> list[float]:
    """A Trainer-shaped loop: callbacks fire at the Trainer's events, in its order."""
    groups = method.param_groups(params, model, lr)
    opt = torch.optim.AdamW(groups or [p for p in model.parameters() if p.requires_grad], lr=lr)
    cbs = method.callbacks(params, model)
    state = TrainerState(max_steps=STEPS, global_step=0, epoch=0.0)
    drive(cbs, "on_train_begin", state)
    model.train()
    losses = []
    for _ in range(STEPS):
        loss = model(input_ids=BATCH, labels=BATCH).loss
        loss.backward()
        opt.step()
        drive(cbs, "on_optimizer_step", state)
        opt.zero_grad(set_to_none=True)
        state.global_step += 1
        drive(cbs, "on_step_end", state)
        losses.append(loss.item())
    return losses


_TRAINED: dict[str, dict[str, Any]] = {}


def trained(name: str, tiny: Path, tmp_root: Path) -> dict[str, Any]:
    """Apply, train, save once per method; the conformance tests read the result."""
    if name not in _TRAINED:
        method = get_method(name)()
        params = method.Params.model_validate(CASES[name][0])
        torch.manual_seed(0)
        model = method.apply(fresh(tiny), params)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        n_total = sum(p.numel() for p in model.parameters())
        losses = train(method, params, model, CASES[name][1]) if method.trains else []
        art = tmp_root / name
        art.mkdir()
        if method.trains:
            method.save(model, art)
        _TRAINED[name] = {
            "method": method,
            "params": params,
            "model": model,
            "art": art,
            "trainable": n_train,
            "total": n_total,
            "losses": losses,
            "logits": logits(model),
        }
    return _TRAINED[name]


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("art")


@pytest.mark.parametrize("name", sorted(CASES))
def test_defaults_pass_check(name: str, shipped: Path) -> None:
    cls = get_method(name)
    assert cls().check(cls.Params(), info_for(shipped)) == []
    assert cls().check(cls.Params.model_validate(CASES[name][0]), info_for(shipped)) == []
    assert "\n" not in cls.description and cls.description


@pytest.mark.parametrize("name", sorted(CASES))
def test_trains_only_its_parameters(name: str, shipped: Path, tmp_root: Path) -> None:
    t = trained(name, shipped, tmp_root)
    if name == "base":
        assert t["trainable"] == 0
    elif name in PARTIAL:
        assert 0 < t["trainable"] < t["total"]
    else:
        assert t["trainable"] == t["total"]


@pytest.mark.parametrize("name", sorted(set(CASES) - {"base"}))
def test_training_lowers_loss(name: str, shipped: Path, tmp_root: Path) -> None:
    losses = trained(name, shipped, tmp_root)["losses"]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 1e-3, (name, losses)


@pytest.mark.parametrize("name", sorted(set(CASES) - {"base"}))
def test_round_trip_gives_identical_logits(name: str, shipped: Path, tmp_root: Path) -> None:
    t = trained(name, shipped, tmp_root)
    loaded = t["method"].load(fresh(shipped), t["params"], t["art"])
    assert torch.allclose(logits(loaded), t["logits"], atol=1e-5)


@pytest.mark.parametrize("name", sorted(set(CASES) - {"base"}))
def test_saves_safetensors_only(name: str, shipped: Path, tmp_root: Path) -> None:
    files = [p for p in trained(name, shipped, tmp_root)["art"].rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert all(p.suffix in (".safetensors", ".json", ".md") for p in files), files


@pytest.mark.parametrize("name", sorted(n for n in CASES if METHODS[n].export_as == "merged"))
def test_merge_keeps_logits(name: str, shipped: Path, tmp_root: Path) -> None:
    t = trained(name, shipped, tmp_root)
    merged = t["method"].load(fresh(shipped), t["params"], t["art"]).merge_and_unload()
    assert not any("lora" in n or "vera" in n for n, _ in merged.named_parameters())
    assert torch.allclose(logits(merged), t["logits"], atol=1e-4)


# --- method-specific behaviour ---------------------------------------------------------


def block_sizes(model: Any) -> list[int]:
    return [sum(p.numel() for p in b.parameters()) for b in model.model.layers]


def test_freeze_trains_exactly_the_top_blocks(tiny: Path) -> None:
    method = get_method("freeze")()
    model = method.apply(fresh(tiny), method.Params(train_top_n=2))
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {
        n
        for n, _ in model.named_parameters()
        if n.startswith(("model.layers.1.", "model.layers.2.", "lm_head.", "model.norm."))
    }
    assert names == expected


def _progressive(tiny: Path, **kw: Any) -> tuple[Any, Any, Any]:
    method = get_method("progressive")()
    params = method.Params.model_validate(kw)
    model = method.apply(fresh(tiny), params)
    return method, params, model


def test_progressive_schedule_by_steps(tiny: Path) -> None:
    method, params, model = _progressive(tiny, unfreeze_every={"steps": 3})
    (cb,) = method.callbacks(params, model)
    b = block_sizes(model)
    head = model.lm_head.weight.numel() + model.model.norm.weight.numel()
    emb = model.model.embed_tokens.weight.numel()
    state = TrainerState(max_steps=20, global_step=0, epoch=0.0)
    drive([cb], "on_train_begin", state)
    for _ in range(12):
        state.global_step += 1
        drive([cb], "on_step_end", state)
    assert cb.history == [
        (0, head + b[2]),
        (3, head + b[2] + b[1]),
        (6, head + sum(b)),
        (9, head + sum(b) + emb),
    ]


def test_progressive_schedule_by_epoch_and_resume(tiny: Path) -> None:
    method, params, model = _progressive(tiny, blocks_per_stage=2, embeddings_last=False)
    (cb,) = method.callbacks(params, model)
    b = block_sizes(model)
    head = model.lm_head.weight.numel() + model.model.norm.weight.numel()
    state = TrainerState(global_step=0, epoch=0.0)
    drive([cb], "on_train_begin", state)
    state.global_step, state.epoch = 5, 0.5
    drive([cb], "on_step_end", state)  # steps do not matter in epoch mode
    state.global_step, state.epoch = 10, 1.0
    drive([cb], "on_epoch_end", state)
    assert cb.history == [(0, head + b[2]), (10, head + sum(b))]
    # A run resumed mid-epoch 1 starts with the blocks of stage 1 unfrozen.
    _, _, model2 = _progressive(tiny, blocks_per_stage=2, embeddings_last=False)
    (cb2,) = method.callbacks(params, model2)
    drive([cb2], "on_train_begin", TrainerState(global_step=15, epoch=1.5))
    assert cb2.history == [(15, head + sum(b))]


def test_progressive_layer_lrs_cover_every_parameter(tiny: Path) -> None:
    method, params, model = _progressive(tiny, layer_lr_decay=0.5)
    groups = method.param_groups(params, model, 1.0)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == {"block0": 0.25, "block1": 0.5, "block2": 1.0, "head": 1.0, "embeddings": 0.125}
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # all, once each


def _trainer(model: Any, tmp: Path, steps: int, callbacks: list[Any], groups: Any = None) -> Any:
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        logging_steps=1,
        remove_unused_columns=False,
    )
    data = [{"input_ids": r, "labels": r} for r in BATCH]
    opt = (torch.optim.AdamW(groups, lr=1e-2), None) if groups else (None, None)
    return Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks, optimizers=opt)


def test_progressive_through_the_trainer(tiny: Path, tmp_path: Path) -> None:
    method, params, model = _progressive(tiny, unfreeze_every={"steps": 2})
    cbs = method.callbacks(params, model)
    bottom = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    trainer = _trainer(model, tmp_path, 4, cbs, method.param_groups(params, model, 1e-2))
    trainer.train()
    assert [s for s, _ in cbs[0].history] == [0, 2, 4]
    assert len(trainer.optimizer.param_groups) == LAYERS + 2  # nothing dropped
    # block 0 unfroze at step 4 (the end): it never took an optimizer step.
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight, bottom)


def test_adalora_allocates_ranks_through_the_trainer(tiny: Path, tmp_path: Path) -> None:
    method = get_method("adalora")()
    params = method.Params(init_r=4, target_r=2, tinit=1, tfinal=1)
    model = method.apply(fresh(tiny), params)
    _trainer(model, tmp_path, 6, method.callbacks(params, model)).train()
    cfg = model.peft_config["default"]
    assert cfg.total_step == 6  # taken from the Trainer
    assert cfg.rank_pattern  # the allocator ran and pruned


def test_prompt_tuning_trains_and_generates(tiny: Path, tmp_path: Path) -> None:
    method = get_method("prompt")()
    model = method.apply(fresh(tiny), method.Params(num_virtual_tokens=3))
    trainer = _trainer(model, tmp_path, 2, [])
    trainer.train()  # labels shorter than logits: peft pads them for the virtual tokens
    assert all(
        torch.isfinite(torch.tensor(h["loss"])) for h in trainer.state.log_history if "loss" in h
    )
    out = model.generate(
        input_ids=BATCH[:1],
        attention_mask=torch.ones_like(BATCH[:1]),
        max_new_tokens=3,
        do_sample=False,
    )
    assert out.shape[1] == BATCH.shape[1] + 3


def test_adapter_starts_as_the_base_model(tiny: Path) -> None:
    method = get_method("adapter")()
    base_logits = logits(fresh(tiny))
    model = method.apply(fresh(tiny), method.Params(placement="houlsby"))
    assert torch.allclose(logits(model), base_logits, atol=1e-6)
    assert "model.layers.0.mlp.up_proj.weight" in model.state_dict()  # base keys untouched


def test_vera_accepts_targets_of_different_shapes(tiny: Path) -> None:
    method = get_method("vera")()
    params = method.Params(r=8, target_modules=["q_proj", "up_proj", "down_proj"])
    assert method.check(params, info_for(tiny)) == []
    method.apply(fresh(tiny), params)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a CPU machine")
def test_qlora_is_rejected_on_cpu_with_a_clear_message(tiny: Path) -> None:
    cls = get_method("qlora")
    ((field, msg),) = cls().check(cls.Params(), info_for(tiny))
    assert field == "" and "QLoRA needs a CUDA GPU" in msg and "use lora" in msg


@pytest.mark.parametrize(
    ("name", "params", "field", "fragment"),
    [
        ("lora", {"target_modules": ["q_prj"]}, "target_modules", "did you mean 'q_proj'"),
        ("dora", {"target_modules": ["nope"]}, "target_modules", "no linear module"),
        ("llama_adapter", {"adapter_layers": LAYERS + 1}, "adapter_layers", "only 3 layers"),
        ("freeze", {"train_top_n": LAYERS + 1}, "train_top_n", "only 3 blocks"),
        ("freeze", {"train_modules": ["attn.zz"]}, "train_modules", "matches no parameter"),
        (
            "freeze",
            {"train_top_n": 0, "train_lm_head": False, "train_final_norm": False},
            "train_top_n",
            "nothing would train",
        ),
        ("progressive", {"start_blocks": LAYERS + 1}, "start_blocks", "only 3 blocks"),
        ("adalora", {"init_r": 4, "target_r": 8}, "target_r", "must be <= init_r"),
        ("adalora", {"tinit": 5, "tfinal": 5, "total_step": 8}, "", "budgeting phase"),
        ("ia3", {"feedforward_modules": ["up_proj"]}, "feedforward_modules", "not in target"),
        ("prompt", {"init": "text"}, "init_text", "non-empty init_text"),
        ("adapter", {"adapter_dim": 64}, "adapter_dim", "below hidden_size"),
    ],
)
def test_check_reports_impossible_params(
    name: str, params: dict, field: str, fragment: str, tiny: Path
) -> None:
    cls = get_method(name)
    problems = cls().check(cls.Params.model_validate(params), info_for(tiny))
    assert any(f == field and fragment in m for f, m in problems), problems


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("lora", {"r": 0}),
        ("lora", {"rank": 4}),
        ("progressive", {"unfreeze_every": {"step": 2}}),
        ("adapter", {"activation": "tanh"}),
        ("qlora", {"bits": 3}),
    ],
)
def test_params_reject_bad_values(name: str, params: dict) -> None:
    with pytest.raises(ValidationError):
        get_method(name).Params.model_validate(params)


# --- export ----------------------------------------------------------------------------


def _run_dir(tmp: Path, shipped: Path, name: str, tmp_root: Path) -> Path:
    """A complete run directory as the worker leaves it: spec.json + artifacts/."""
    import shutil

    from transformers import AutoTokenizer

    run = tmp / name
    shutil.copytree(trained(name, shipped, tmp_root)["art"], run / "artifacts")
    AutoTokenizer.from_pretrained(shipped).save_pretrained(run / "artifacts")
    spec = {
        "config": {
            "method": {"name": name, **CASES[name][0]},
            "model": {"trust_remote_code": False},
        },
        "paths": {"model": str(shipped)},
    }
    (run / "spec.json").write_text(json.dumps(spec))
    (run / "artifacts" / "training_config.json").write_text(json.dumps(spec["config"]))
    return run


@pytest.mark.parametrize("name", ["lora", "ia3", "freeze"])
def test_export_merged_loads_as_a_plain_model(
    name: str, shipped: Path, tmp_path: Path, tmp_root: Path
) -> None:
    from ftsweep.export import export

    out = export(_run_dir(tmp_path, shipped, name, tmp_root), tmp_path / "out", merge=True)
    assert not list(out.glob("*.bin")) and list(out.glob("*.safetensors"))
    plain = AutoModelForCausalLM.from_pretrained(out)
    assert torch.allclose(logits(plain), trained(name, shipped, tmp_root)["logits"], atol=1e-4)
    assert (out / "tokenizer.json").is_file()
    # what the model was trained with travels with it (it was missing from merged exports)
    assert json.loads((out / "training_config.json").read_text())["method"]["name"] == name


def test_export_refuses_to_merge_prompt_learning(
    shipped: Path, tmp_path: Path, tmp_root: Path
) -> None:
    from ftsweep.export import export, load_trained

    run = _run_dir(tmp_path, shipped, "prompt", tmp_root)
    with pytest.raises(FtsweepError, match="cannot be merged.*lora"):
        export(run, tmp_path / "out", merge=True)
    out = export(run, tmp_path / "out2", merge=False)
    assert (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "training_config.json").read_text())["method"]["name"] == "prompt"
    model, _ = load_trained(run)
    assert torch.allclose(logits(model), trained("prompt", shipped, tmp_root)["logits"], atol=1e-5)
