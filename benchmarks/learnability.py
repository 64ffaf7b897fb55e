"""Measure how learnable the embedded benchmark is for models/tiny-base.

    python benchmarks/learnability.py                          # instruction, all methods
    python benchmarks/learnability.py --family dialogue --methods full --lr full=3e-3
    python benchmarks/learnability.py --methods full,lora --lr full=1e-3,lora=5e-3 --steps 300

For each method: load the base model, fine-tune on the family's train split with the
prompt masked out of the loss (labels -100), then generate greedily on the test split
and score it. Instruction and dialogue: exact match after stripping whitespace. Code:
the generated function passes all of its asserts (run in a throwaway subprocess).
"base" is the model without training. Plain torch loop, AdamW, linear warm-up/decay,
one thread by default (the demo runs two fine-tunes in parallel on two cores).
Standalone on purpose: it checks the data and model, not ftsweep's worker.

Measured 2026-11-27 on the shared 2-core dev VM, two runs in parallel with one thread
each (other engineers' jobs running too, so train_s varies by up to ~2x), seed 0,
250 steps, batch 16, AdamW, 10% warm-up then linear decay, LoRA r=16 alpha=32 on all
linear layers, prefix tuning with 16 virtual tokens:

    family       method  lr      train_s  score   notes
    instruction  base    -          0     0.000   answers in pretraining prose style
    instruction  full    1e-3      44     0.905
    instruction  full    1e-3      28     0.915   seed 1
    instruction  full    2e-3      26     0.880
    instruction  full    3e-3      30     0.835
    instruction  full    1e-2      32     0.230   (older task mix) too high
    instruction  lora    2e-3      55     0.770
    instruction  lora    2e-3      29     0.785   seed 1
    instruction  lora    5e-3      27     0.710
    instruction  lora    1e-2      31     0.170
    instruction  lora    2e-2      32     0.120
    instruction  lora    3e-2      35     0.000   diverges
    instruction  prefix  3e-2      24     0.165
    instruction  prefix  1e-1      22     0.210
    instruction  prefix  3e-1      21     0.200
    dialogue     base    -          0     0.000   (--max-length 128 --max-new-tokens 8)
    dialogue     full    1e-3      54     0.440   copy tasks (kth, recall) stay < 15%
    code         base    -          0     0.000   (--max-length 128 --max-new-tokens 32)
    code         full    1e-3      56     0.525   pass rate of the three asserts

Generation: 0.5-1.5 s for 200 instruction prompts, ~3 s dialogue, ~22 s code.
"(older task mix)": before the word-copying tasks left the instruction mix; with them,
full fine-tuning at 3e-3 scored 0.475.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ftsweep.data.formats import (  # noqa: E402
    dialogue_prompt,
    render_code,
    render_dialogue,
    render_instruction,
)

DEFAULT_LR = {"full": 1e-3, "lora": 2e-3, "prefix": 1e-1}  # best measured, see above
# family: (max_length, max_new_tokens) covering the longest example / answer + eos
FAMILY_LENGTHS = {"instruction": (64, 8), "dialogue": (128, 8), "code": (128, 32)}


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def train_example(
    family: str, rec: dict[str, Any], tok, max_length: int
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) with -100 on everything that is not trained completion;
    ``<s>`` first and ``</s>`` closing the completion, as ftsweep's worker does."""
    if family == "dialogue":
        segments = render_dialogue(rec, tok)  # replies already end with eos
    else:
        prompt, completion = (
            render_instruction(rec, "auto") if family == "instruction" else render_code(rec)
        )
        segments = [(prompt, False), (completion + tok.eos_token, True)]
    ids: list[int] = [tok.bos_token_id]
    labels: list[int] = [-100]
    for text, trained in segments:
        seg = tok(text, add_special_tokens=False)["input_ids"]
        ids += seg
        labels += seg if trained else [-100] * len(seg)
    return ids[:max_length], labels[:max_length]


def eval_prompt(family: str, rec: dict[str, Any], tok) -> tuple[str, str]:
    if family == "instruction":
        return render_instruction(rec, "auto")
    if family == "dialogue":
        return dialogue_prompt(rec, tok)
    return render_code(rec)


def collate(batch: list[tuple[list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def build(method: str, model_dir: Path, seed: int, prefix_tokens: int, lora_r: int):
    from peft import LoraConfig, PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True)
    if method == "lora":
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora_r, lora_alpha=2 * lora_r, target_modules="all-linear", task_type="CAUSAL_LM"
            ),
        )
    elif method == "prefix":
        model = get_peft_model(
            model, PrefixTuningConfig(num_virtual_tokens=prefix_tokens, task_type="CAUSAL_LM")
        )
    return model


def train(model, examples, args, lr: float, pad: int) -> float:
    gen = torch.Generator().manual_seed(args.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = max(1, args.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (args.steps - s) / (args.steps - warmup)))
    )
    model.train()
    order: list[int] = []
    losses = []
    for _ in range(args.steps):
        if len(order) < args.batch:
            order += torch.randperm(len(examples), generator=gen).tolist()
        batch, order = order[: args.batch], order[args.batch :]
        loss = model(**collate([examples[i] for i in batch], pad)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return sum(losses[-20:]) / len(losses[-20:])


@torch.no_grad()
def generate(model, tok, prompts: list[str], max_new_tokens: int, batch: int = 50) -> list[str]:
    """Greedy decoding by plain forward passes over right-padded rows, no KV cache.

    Not ``model.generate``: with peft 0.21 + transformers 5.24, generate() on a
    PrefixTuning model silently ignores the prefix (its first-step logits equal the base
    model's; measured), which would score prefix tuning as the base model. Right padding
    also keeps positions exactly as in training.
    """
    model.eval()
    stop = {tok.eos_token_id, tok.convert_tokens_to_ids("<|end|>")}
    outs = []
    for i in range(0, len(prompts), batch):
        enc = [tok(p)["input_ids"] for p in prompts[i : i + batch]]  # with <s>
        n = len(enc)
        lengths = torch.tensor([len(e) for e in enc])
        buf = torch.full((n, int(lengths.max()) + max_new_tokens), tok.pad_token_id)
        mask = torch.zeros_like(buf)
        for r, e in enumerate(enc):
            buf[r, : len(e)] = torch.tensor(e)
            mask[r, : len(e)] = 1
        start, done = lengths.clone(), torch.zeros(n, dtype=torch.bool)
        rows = torch.arange(n)
        for _ in range(max_new_tokens):
            width = int(lengths.max())
            logits = model(input_ids=buf[:, :width], attention_mask=mask[:, :width]).logits
            nxt = logits[rows, lengths - 1].argmax(-1)
            live = ~done
            buf[rows[live], lengths[live]] = nxt[live]
            mask[rows[live], lengths[live]] = 1
            lengths = lengths + live.long()
            done |= torch.tensor([int(t) in stop for t in nxt])
            if bool(done.all()):
                break
        for r in range(n):
            new = [t for t in buf[r, start[r] : lengths[r]].tolist() if t not in stop]
            outs.append(tok.decode(new, skip_special_tokens=True))
    return outs


CODE_RUNNER = r"""
import json, signal, sys
def alarm(*_): raise TimeoutError
signal.signal(signal.SIGALRM, alarm)
for item in json.load(sys.stdin):
    ok = True
    try:
        signal.alarm(2); ns = {}
        exec(item["code"], ns)
        for t in item["tests"]: exec(t, ns)
    except BaseException: ok = False
    finally: signal.alarm(0)
    print(int(ok), flush=True)
"""


def score(family: str, records, outputs: list[str], targets: list[str]) -> list[float]:
    if family != "code":
        return [float(o.strip() == t.strip()) for o, t in zip(outputs, targets, strict=True)]
    items = [{"code": o, "tests": r["tests"]} for r, o in zip(records, outputs, strict=True)]
    proc = subprocess.run(
        [sys.executable, "-c", CODE_RUNNER],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        timeout=120,
    )
    flags = [float(x) for x in proc.stdout.split()]
    return flags + [0.0] * (len(items) - len(flags))


def run(method: str, lr: float, args) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    data = ROOT / "data" / args.family
    train_recs = load_jsonl(data / "train.jsonl")
    test_recs = load_jsonl(data / "test.jsonl")[: args.n_test]
    examples = [train_example(args.family, r, tok, args.max_length) for r in train_recs]
    model = build(method, args.model, args.seed, args.prefix_tokens, args.lora_r)
    t0 = time.time()
    loss = train(model, examples, args, lr, tok.pad_token_id) if method != "base" else math.nan
    train_s = time.time() - t0
    prompts, targets = zip(*(eval_prompt(args.family, r, tok) for r in test_recs), strict=True)
    t1 = time.time()
    outputs = generate(model, tok, list(prompts), args.max_new_tokens)
    gen_s = time.time() - t1
    scores = score(args.family, test_recs, outputs, list(targets))
    by_task: dict[str, list[float]] = defaultdict(list)
    for r, s in zip(test_recs, scores, strict=True):
        by_task[r["task"]].append(s)
    return {
        "family": args.family,
        "method": method,
        "lr": lr if method != "base" else None,
        "steps": args.steps if method != "base" else 0,
        "batch": args.batch,
        "train_s": round(train_s, 1),
        "gen_s": round(gen_s, 1),
        "final_loss": round(loss, 3),
        "score": round(sum(scores) / len(scores), 3),
        "by_task": {k: round(sum(v) / len(v), 2) for k, v in sorted(by_task.items())},
        "examples": [
            [p[-60:], t, o] for p, t, o in list(zip(prompts, targets, outputs, strict=True))[:3]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--family", choices=["instruction", "dialogue", "code"], default="instruction"
    )
    parser.add_argument("--methods", default="base,full,lora,prefix")
    parser.add_argument("--lr", default="", help="per-method overrides, e.g. full=1e-3,lora=5e-3")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-length", type=int, help="default: per family, FAMILY_LENGTHS")
    parser.add_argument("--max-new-tokens", type=int, help="default: per family")
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--prefix-tokens", type=int, default=16)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "tiny-base")
    parser.add_argument("--json", type=Path, help="append one JSON line per run here")
    parser.add_argument("--verbose", action="store_true", help="print per-task scores and samples")
    args = parser.parse_args()
    length, new_tokens = FAMILY_LENGTHS[args.family]
    args.max_length = args.max_length or length
    args.max_new_tokens = args.max_new_tokens or new_tokens
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # cheap insurance against denormal slow paths on CPU
    lrs = dict(DEFAULT_LR)
    for item in filter(None, args.lr.split(",")):
        name, value = item.split("=")
        lrs[name] = float(value)
    print(
        f"{'family':12} {'method':7} {'lr':>8} {'steps':>5} {'train_s':>7} {'gen_s':>6} "
        f"{'loss':>6} {'score':>6}",
        flush=True,
    )
    for method in args.methods.split(","):
        res = run(method, lrs.get(method, 0.0), args)
        print(
            f"{res['family']:12} {method:7} {res['lr'] or '-':>8} {res['steps']:>5} "
            f"{res['train_s']:>7} {res['gen_s']:>6} {res['final_loss']:>6} {res['score']:>6}",
            flush=True,
        )
        if args.verbose:
            print("   ", res["by_task"], "\n   ", res["examples"], flush=True)
        if args.json:
            with args.json.open("a", encoding="utf-8") as f:
                f.write(json.dumps(res, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
