"""The orpo, kto and reward objectives (issue 11), the unpaired family and the
conversational preference form.

One tiny run per objective x method is trained in process (module-scoped, 12 steps on
16 pairs, so the loss has something to fall on) and every training test reads it.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from ftsweep.config.load import load_experiment
from ftsweep.rundir import SPEC, RunDir, atomic_write_json
from tests.conftest import DATA, MODEL
from tests.test_preference import preference_yaml, problems_of


def objective_yaml(objective: str, matrix: str = "matrix:\n  method: [full]\n", **kw) -> str:
    """A preference experiment under ``objective`` (reward: scored by reward_accuracy)."""
    text = preference_yaml(f"{objective}-t", matrix=matrix, **kw)
    text = text.replace("  objective: dpo\n  dpo: {beta: 0.5}\n", f"  objective: {objective}\n")
    if objective == "reward":
        text = text.replace("[loss, preference_accuracy]", "[reward_accuracy]")
        text = text.replace(
            "primary_metric: preference_accuracy", "primary_metric: reward_accuracy"
        )
    return text


def unpaired_yaml(**kw) -> str:
    text = objective_yaml("kto", **kw)
    text = text.replace(f"{DATA}/preference/", f"{DATA}/unpaired/")
    text = text.replace("family: preference", "family: unpaired")
    text = text.replace("[loss, preference_accuracy]", "[loss]")
    return text.replace("primary_metric: preference_accuracy", "primary_metric: eval_loss")


# --- validation: families, refusals, evaluators --------------------------------------


def test_each_objective_validates_on_its_families(write_exp):
    for objective in ("orpo", "kto", "reward"):
        (run,) = load_experiment(write_exp(objective_yaml(objective), f"{objective}.yaml")).runs
        assert run.config["training"]["objective"] == objective
    (run,) = load_experiment(write_exp(unpaired_yaml(), "u.yaml")).runs
    assert run.config["data"]["family"] == "unpaired"
    text = unpaired_yaml().replace("objective: kto", "objective: orpo")
    found = problems_of(write_exp(text, "orpo-u.yaml"))
    assert any("training.objective orpo learns from preference pairs" in p for p in found)
    assert any("this is unpaired data" in p for p in found)


def test_objective_params_enter_the_run_id(write_exp):
    matrix = "matrix:\n  method: [full]\n  training.orpo.beta: [0.1, 0.3]\n"
    runs = load_experiment(write_exp(objective_yaml("orpo", matrix=matrix))).runs
    assert len({r.run_id for r in runs}) == 2
    assert sorted(r.config["training"]["orpo"]["beta"] for r in runs) == [0.1, 0.3]


def test_refusals_carry_their_reasons(write_exp):
    matrix = "matrix:\n  method:\n    - base\n    - {name: prompt, num_virtual_tokens: [4]}\n"
    reward = problems_of(write_exp(objective_yaml("reward", matrix=matrix), "r.yaml"))
    assert any("method base cannot train with training.objective reward" in p for p in reward)
    assert any("method prompt cannot train" in p and "virtual tokens" in p for p in reward)
    orpo = problems_of(write_exp(objective_yaml("orpo", matrix=matrix), "o.yaml"))
    assert any("method prompt cannot train with training.objective orpo" in p for p in orpo)
    kto = objective_yaml("kto").replace("batch_size: 8", "batch_size: 1")
    path = write_exp(kto, "k.yaml")
    line = kto.splitlines().index("  batch_size: 1") + 1
    found = problems_of(path)
    assert any(f"{path}:{line}: training.batch_size" in p and "KL term" in p for p in found)


def test_a_reward_model_is_scored_by_its_margins_only(write_exp):
    text = objective_yaml("reward").replace(
        "[reward_accuracy]", "[reward_accuracy, loss, exact_match]"
    )
    found = problems_of(write_exp(text))
    assert any("loss needs a language model's loss" in p and "reward model" in p for p in found)
    assert any("exact_match needs generated text" in p for p in found)
    assert not any("reward_accuracy needs" in p for p in found)
    dpo = preference_yaml().replace("[loss, preference_accuracy]", "[loss, reward_accuracy]")
    found = problems_of(write_exp(dpo, "dpo.yaml"))
    assert any("reward_accuracy reads a reward model's scores" in p for p in found)


# --- data: unpaired records, the conversational form, field names ---------------------


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_bad_unpaired_records_get_file_and_line(write_exp, tmp_path):
    good = json.loads((DATA / "unpaired" / "train.jsonl").read_text().splitlines()[0])
    bad = _write_jsonl(
        tmp_path / "bad.jsonl",
        [good, {k: v for k, v in good.items() if k != "label"}, {**good, "label": "yes"}],
    )
    text = unpaired_yaml().replace(f"{DATA}/unpaired/train.jsonl", str(bad))
    found = problems_of(write_exp(text))
    assert any(f"{bad}:2: missing label (unpaired records need prompt" in p for p in found)
    assert any(f"{bad}:3: label must be true" in p and "got 'yes'" in p for p in found)
    assert not any(f"{bad}:1:" in p for p in found)


def test_conversational_pairs_validate_and_render_with_the_chat_template(write_exp, tmp_path):
    from transformers import AutoTokenizer

    from ftsweep.data import pairs

    chat = {
        "id": "c1",
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
        "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": "5",
    }
    ending_with_answer = {**chat, "id": "c2", "prompt": chat["prompt"] + chat["chosen"]}
    same = {**chat, "id": "c3", "rejected": "4"}
    path = _write_jsonl(tmp_path / "chat.jsonl", [chat, ending_with_answer, same])
    text = objective_yaml("orpo").replace(f"{DATA}/preference/train.jsonl", str(path))
    found = problems_of(write_exp(text))
    assert any(f"{path}:2: the prompt's last message is the assistant's" in p for p in found)
    assert any(f"{path}:3: chosen and rejected are the same answer" in p for p in found)
    assert not any(f"{path}:1:" in p for p in found)
    tok = AutoTokenizer.from_pretrained(MODEL)
    prompt, answer = pairs.prompt_and_answer(chat, "auto", tok)
    expected = tok.apply_chat_template(chat["prompt"], tokenize=False, add_generation_prompt=True)
    assert prompt == expected and "2+2?" in prompt and answer == "4"
    plain = json.loads((DATA / "preference" / "train.jsonl").read_text().splitlines()[1])
    assert pairs.render_prompt(plain, "auto", tok).startswith("### Instruction:\n")


def test_field_names_map_user_keys_for_unpaired_records(tmp_path):
    from ftsweep.config.schema import Cleaning
    from ftsweep.data.records import load_split_records

    rows = [
        {"q": "Say hi", "a": "hi", "ok": True},
        {"q": "Say bye", "a": "hello", "ok": False},
    ]
    path = _write_jsonl(tmp_path / "mine.jsonl", rows)
    data = {
        "family": "unpaired",
        "on_bad_record": "error",
        "fields": {"prompt": "q", "completion": "a", "label": "ok", "id": None, "input": None},
        "clean": Cleaning().model_dump(),
    }
    records, counts = load_split_records(data, {"data.train": str(path)}, "train")
    assert counts["kept"] == 2
    assert [(r["prompt"], r["completion"], r["label"]) for r in records] == [
        ("Say hi", "hi", True),
        ("Say bye", "hello", False),
    ]
    from ftsweep.data.pairs import label_value

    assert [label_value(v) for v in (True, "FALSE", " true", 1, "yes", None)] == [
        True,
        False,
        True,
        None,
        None,
        None,
    ]  # a CSV cell spells its boolean; nothing else is guessed
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"q": "x", "a": "y"}])
    from ftsweep.data.records import BadRecordError

    with pytest.raises(BadRecordError, match=r"bad.jsonl:1: missing ok \(data.fields.label\)"):
        load_split_records(data, {"data.train": str(bad)}, "train")


def test_kto_rows_split_pairs_into_labelled_answers_in_a_seeded_order():
    from transformers import AutoTokenizer

    from ftsweep.worker.preference import unpaired_rows

    (spec,) = load_experiment_text(objective_yaml("kto")).runs
    tok = AutoTokenizer.from_pretrained(MODEL)
    rows = unpaired_rows(spec.config, spec.paths, "train", 8, tok)
    assert len(rows) == 16 and sum(r["label"] for r in rows) == 8
    assert {r["prompt"] for r in rows if r["label"]} == {
        r["prompt"] for r in rows if not r["label"]
    }
    assert rows == unpaired_rows(spec.config, spec.paths, "train", 8, tok)  # deterministic
    assert [r["label"] for r in rows] != [True, False] * 8  # shuffled, not pair by pair


def load_experiment_text(text: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exp.yaml"
        path.write_text(text, encoding="utf-8")
        return load_experiment(path)


def test_reward_sequences_keep_the_answer_when_cut():
    from transformers import AutoTokenizer

    from ftsweep.worker.reward import answer_ids

    tok = AutoTokenizer.from_pretrained(MODEL)
    answer = tok("yes", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = answer_ids(tok, "a long prompt " * 20, "yes", 16)
    assert len(ids) == 16 and ids[0] == tok.bos_token_id and ids[-len(answer) :] == answer
    short = answer_ids(tok, "hi", "yes", 64)
    assert short == [tok.bos_token_id, *tok("hi", add_special_tokens=False)["input_ids"], *answer]


def test_make_data_writes_the_same_unpaired_answers(tmp_path):
    sys.path.insert(0, str(DATA.parent / "scripts"))
    import make_data

    for path in make_data.write_unpaired(tmp_path, seed=0):
        shipped = DATA / "unpaired" / path.name
        assert path.read_bytes() == shipped.read_bytes(), f"{shipped} is stale: rerun make_data"
    pairs = [json.loads(x) for x in (DATA / "preference" / "test.jsonl").read_text().splitlines()]
    answers = [json.loads(x) for x in (DATA / "unpaired" / "test.jsonl").read_text().splitlines()]
    assert len(answers) == len(pairs) == 200
    for pair, one in zip(pairs, answers, strict=True):
        assert one["completion"] == (pair["chosen"] if one["label"] else pair["rejected"])
    assert 0.4 < sum(a["label"] for a in answers) / 200 < 0.6


# --- the evaluator -------------------------------------------------------------------


def test_reward_accuracy_from_margins():
    from ftsweep.evaluators import get_evaluator

    cls = get_evaluator("reward_accuracy")
    scores = cls.from_margins({"a": 2.0, "b": -1.0, "c": 0.0, "d": 0.5})
    assert scores.aggregate == {"reward_accuracy": 0.5, "reward_margin": 0.375}
    assert [v for _, m, v in scores.per_example if m == "reward_accuracy"] == [1, 0, 0, 1]
    with pytest.raises(ValueError, match="no reward margins"):
        cls.from_margins({})


def test_score_margins_read_the_score_head_on_a_hand_made_model():
    """A stub reward model that scores a sequence by its length: chosen is longer."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from ftsweep.worker.dataset import Example
    from ftsweep.worker.reward import answer_ids, score_margins

    tok = AutoTokenizer.from_pretrained(MODEL)

    class Lengths(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return SimpleNamespace(logits=attention_mask.sum(1, keepdim=True).float())

    records = [
        {"chosen": "a b c d", "rejected": "a"},
        {"chosen": "a", "rejected": "a b c d e f"},
    ]
    examples = [Example(f"e{i}", [], [], "Q:", "", r) for i, r in enumerate(records)]
    margins = score_margins(Lengths(), tok, examples, 1, torch.device("cpu"), 64)
    length = {k: len(answer_ids(tok, "Q:", v, 64)) for k, v in records[0].items()}
    assert margins["e0"] == length["chosen"] - length["rejected"] > 0 and margins["e1"] < 0
    cls = __import__("ftsweep.evaluators", fromlist=["get_evaluator"]).get_evaluator(
        "reward_accuracy"
    )
    assert cls.from_margins(margins).aggregate["reward_accuracy"] == 0.5


# --- training: each objective x {full, lora} -----------------------------------------

METHODS = {"full": "method: [full]", "lora": "method:\n    - {name: lora, r: [8]}"}
CASES = [(o, m) for o in ("orpo", "kto", "reward") for m in ("full", "lora")]


def _conversational(source, out, n: int = 32):
    """The first ``n`` shipped pairs in the conversational form (prompt as messages)."""
    rows = []
    for line in source.read_text(encoding="utf-8").splitlines()[:n]:
        pair = json.loads(line)
        rows.append(
            {
                "id": pair["id"],
                "prompt": [{"role": "user", "content": f"{pair['prompt']}\n{pair['input']}"}],
                "chosen": [{"role": "assistant", "content": pair["chosen"]}],
                "rejected": pair["rejected"],
            }
        )
    return _write_jsonl(out, rows)


@pytest.fixture(scope="module", params=CASES, ids=[f"{o}-{m}" for o, m in CASES])
def trained(request, tmp_path_factory):
    """ONE tiny run per objective x method, trained in process; the model as evaluated
    is kept (``in_memory``) for the round trip. kto-lora reads the unpaired family,
    orpo-lora the conversational form of the shipped pairs."""
    objective, method = request.param
    tmp = tmp_path_factory.mktemp(f"{objective}-{method}")
    matrix = f"matrix:\n  {METHODS[method]}\n"
    if (objective, method) == ("kto", "lora"):
        text = unpaired_yaml(matrix=matrix, max_steps=12)
    else:
        text = objective_yaml(objective, matrix=matrix, max_steps=12)
    # 16 pairs, 8 a batch: each example is seen six times, so the loss has room to fall.
    # (8 pairs in batches of 4 is faster, but KTO's loss then wanders: its KL estimate
    # comes from the batch.)
    text = text.replace("max_train_samples: 128", "max_train_samples: 16")
    text = text.replace("lr: 1.0e-3", "lr: 5.0e-3" if method == "lora" else "lr: 1.0e-3")
    if (objective, method) == ("orpo", "lora"):
        for split in ("train", "eval", "test"):
            chat = _conversational(DATA / "preference" / f"{split}.jsonl", tmp / f"{split}.jsonl")
            text = text.replace(f"{DATA}/preference/{split}.jsonl", str(chat))
    exp = tmp / "exp.yaml"
    exp.write_text(text, encoding="utf-8")
    (spec,) = load_experiment(exp).runs
    from ftsweep.worker import __main__ as worker

    kept: dict = {}
    real = worker.evaluate

    def keep(model, *args, **kw):
        kept["model"] = model
        return real(model, *args, **kw)

    mp = pytest.MonkeyPatch()
    mp.setenv("FTSWEEP_THREADS", "1")
    mp.setattr(worker, "evaluate", keep)
    rd = RunDir(tmp / spec.run_id)
    rd.path.mkdir()
    atomic_write_json(rd.file(SPEC), spec.to_json())
    try:
        result = worker.run(rd.path)
    finally:
        mp.undo()
    return objective, method, rd, result, kept["model"]


@pytest.mark.slow
def test_trains_with_a_falling_loss(trained):
    objective, method, rd, result, _ = trained
    assert result["status"] == "complete" and result["steps"] == 12
    losses = [m["value"] for m in rd.metrics() if m["name"] == "loss"]
    assert len(losses) == 6
    assert losses[-1] < losses[0], f"{objective}-{method}: loss did not fall: {losses}"
    saved = json.loads((rd.file("artifacts") / "training_config.json").read_text())
    assert saved["training"]["objective"] == objective


@pytest.mark.slow
def test_artefact_is_safetensors_without_training_leftovers(trained):
    objective, method, rd, _, _ = trained
    art = rd.file("artifacts")
    weights = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    assert (art / weights).is_file()
    assert not list(art.glob("*.bin")) and not (art / "ref").exists()
    if method == "lora":
        config = json.loads((art / "adapter_config.json").read_text())
        expected = "SEQ_CLS" if objective == "reward" else "CAUSAL_LM"
        assert config["task_type"] == expected
        if objective == "reward":  # the new score head is saved beside the adapter
            from safetensors import safe_open

            with safe_open(str(art / weights), "pt") as f:
                assert any("score" in k for k in f.keys()), list(f.keys())
    if objective == "reward" and method == "full":
        config = json.loads((art / "config.json").read_text())
        assert len(config["id2label"]) == 1 and config["pad_token_id"] is not None
        assert config["architectures"] == ["LlamaForSequenceClassification"]


@pytest.mark.slow
def test_reloaded_artefact_gives_identical_outputs(trained):
    objective, method, rd, _, in_memory = trained
    from ftsweep.export import load_trained  # a reward run: worker.reward.load_reward_model

    reloaded, tok = load_trained(rd.path)
    enc = tok(["### Instruction:\nName a colour.\n\n### Response:\nred"], return_tensors="pt")
    in_memory.eval()
    with torch.no_grad():
        before = in_memory(**enc).logits
        after = reloaded(**enc).logits
    assert before.shape == after.shape
    # The same weights; only the thread count differs from the run's (FTSWEEP_THREADS=1),
    # which can reorder a float32 sum by an ulp.
    assert torch.allclose(before, after, rtol=1e-5, atol=1e-6), (before - after).abs().max()


@pytest.mark.slow
def test_final_evaluation_reads_the_right_margins(trained):
    objective, method, rd, result, _ = trained
    final = result["final_eval"]
    rows = [json.loads(x) for x in rd.file("evals.jsonl").read_text().splitlines()]
    if objective == "reward":
        assert set(final) == {"reward_accuracy", "reward_margin"}
        accuracy = [r["value"] for r in rows if r["metric"] == "reward_accuracy"]
        margins = [r["value"] for r in rows if r["metric"] == "reward_margin"]
        assert len(accuracy) == len(margins) == 16
        assert accuracy == [1.0 if m > 0 else 0.0 for m in margins]
        assert final["reward_accuracy"] == pytest.approx(sum(accuracy) / 16)
        assert len(set(margins)) > 1  # the head scores pairs apart, not one constant
    elif (objective, method) == ("kto", "lora"):  # unpaired data: the loss only
        assert final["eval_loss"] > 0 and "preference_accuracy" not in final
    else:
        assert 0.0 <= final["preference_accuracy"] <= 1.0 and final["eval_loss"] > 0
    if (objective, method) == ("orpo", "lora"):  # it trained and scored conversational pairs
        from pathlib import Path

        paths = rd.spec()["paths"]
        for split in ("data.train", "data.test"):
            first = json.loads(Path(paths[split]).read_text(encoding="utf-8").splitlines()[0])
            assert isinstance(first["prompt"], list) and isinstance(first["chosen"], list)


def test_a_reward_model_trains_its_new_head_under_every_method():
    """freeze trains the head; a LoRA adapter on a score-head model saves it (SEQ_CLS)."""
    from ftsweep.methods import get_method
    from ftsweep.objectives import get_objective
    from ftsweep.worker.setup import load_model_and_tokenizer

    (spec,) = load_experiment_text(objective_yaml("reward")).runs
    reward = get_objective("reward")()
    for name, params in (("freeze", {"train_top_n": 1}), ("lora", {"r": 4})):
        model, tok = load_model_and_tokenizer(spec.config, spec.paths["model"], head="score")
        assert type(model).__name__ == "LlamaForSequenceClassification"
        assert model.config.pad_token_id == tok.pad_token_id
        method = get_method(name)()
        model = method.apply(model, method.Params.model_validate(params))
        reward.prepare(model)
        trained = {n for n, p in model.named_parameters() if p.requires_grad}
        assert any("score" in n for n in trained), (name, sorted(trained)[:5])
        if name == "lora":
            assert model.peft_config["default"].task_type == "SEQ_CLS"
            assert any("lora_" in n for n in trained)
