"""Build models/tiny-base: a tiny pretrained Llama that tests and the demo fine-tune.

    python scripts/build_tiny_base.py            # ~10 min on 2 CPU cores
    python scripts/build_tiny_base.py --steps 50 --out /tmp/tb   # smoke run

Steps: build a corpus (Python stdlib source shipped with the interpreter + generated
English/Chinese prose about the benchmark vocabularies + a few documents in the
Alpaca/chat/code formats with *other* tasks), train a byte-level BPE tokenizer on it,
pretrain a LlamaForCausalLM on CPU for a fixed number of steps, save safetensors weights,
tokenizer (with chat template) and a model card. Fixed seed, deterministic on one machine.

The corpus states every fact the fine-tuning tasks use (translations, antonyms, sums,
which word is first/second, word counts) in prose, never in the fine-tuning formats: the
base model knows the vocabulary but cannot answer the tasks until it is fine-tuned.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import random
import sys
import sysconfig
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_data as md  # noqa: E402  (the benchmark vocabularies live there)

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
VOCAB_SIZE = 2048
SPECIAL = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
# Each message is "<|role|>\n" + content, closed by "<|end|>\n"; an assistant reply is
# closed by eos instead, so any generate() that stops at eos stops at the end of a reply,
# and the trained segment of a reply (content + eos) is easy to locate.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + message['role'] + '; use system, user or assistant') }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '<|end|>' }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
STDLIB_FILES = [
    "textwrap.py",
    "fractions.py",
    "statistics.py",
    "bisect.py",
    "heapq.py",
    "functools.py",
    "random.py",
    "colorsys.py",
    "calendar.py",
    "shlex.py",
    "fnmatch.py",
    "csv.py",
    "string.py",
    "operator.py",
    "copy.py",
    "numbers.py",
    "queue.py",
    "reprlib.py",
]
MODEL = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=256,
)


# --- corpus --------------------------------------------------------------------------


def stdlib_docs() -> list[str]:
    """Source of a fixed list of pure-Python stdlib modules, split at top-level defs."""
    base = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    for name in STDLIB_FILES:
        text = (base / name).read_text(encoding="utf-8")
        chunk: list[str] = []
        for line in text.splitlines():
            if line.startswith(("def ", "class ")) and chunk:
                docs.append("\n".join(chunk).strip())
                chunk = []
            chunk.append(line)
        docs.append("\n".join(chunk).strip())
    return [d for d in docs if d]


def _a(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def fact_en(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        w = rng.choice(sorted(md.EN_ZH))
        return rng.choice(
            [
                f"The Chinese word for {w} is {md.EN_ZH[w]}.",
                f"In Chinese, {w} is {md.EN_ZH[w]}.",
                f"{md.EN_ZH[w]} means {w}.",
            ]
        )
    if kind == 1:
        a, b = rng.choice(md.ANTONYMS_EN)
        a, b = (a, b) if rng.random() < 0.5 else (b, a)
        return rng.choice([f"The opposite of {a} is {b}.", f"{a} and {b} are opposites."])
    if kind == 2:
        i = rng.randrange(len(md.NUMBERS))
        return rng.choice(
            [f"{list(md.NUMBERS)[i]} is {i}.", f"{i} is written {list(md.NUMBERS)[i]}."]
        )
    if kind == 3:
        a, b = rng.randrange(10), rng.randrange(10)
        return rng.choice([f"{a} + {b} = {a + b}.", f"{a} plus {b} is {a + b}."])
    if kind == 4:
        cat = rng.choice(sorted(md.CATEGORY_EN))
        w = rng.choice(sorted(md.CATEGORY_EN[cat]))
        return f"{w} is {_a(cat)} {cat}."
    if kind == 5:
        w = md._words(rng, md.LIST_WORDS_EN, 2, 6)
        k = rng.randrange(min(len(w), 4))
        return (
            f"The words are {' '.join(w)}. The {md.ORDINALS_EN[k]} word is {w[k]}. "
            f"Backwards they are {' '.join(reversed(w))}. That is {len(w)} words."
        )
    c, an, fr = (rng.choice(sorted(t)) for t in (md.COLORS, md.ANIMALS, md.FRUITS))
    return rng.choice(
        [
            f"The {c} {an} eats {_a(fr)} {fr}.",
            f"I see {_a(c)} {c} {an} and {_a(fr)} {fr}.",
            f"{_a(an).capitalize()} {an} likes {c} {fr}s.",
        ]
    )


def fact_zh(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        w = rng.choice(sorted(md.EN_ZH))
        return rng.choice([f"{w}的中文是{md.EN_ZH[w]}。", f"{md.EN_ZH[w]}的英文是 {w}。"])
    if kind == 1:
        a, b = rng.choice(md.ANTONYMS_ZH)
        a, b = (a, b) if rng.random() < 0.5 else (b, a)
        return rng.choice([f"{a}的反义词是{b}。", f"{a}和{b}意思相反。"])
    if kind == 2:
        i = rng.randrange(len(md.NUMBERS))
        return f"{list(md.NUMBERS.values())[i]}就是 {i}。"
    if kind == 3:
        a, b = rng.randrange(10), rng.randrange(10)
        return rng.choice([f"{a}加{b}等于{a + b}。", f"{a} + {b} = {a + b}。"])
    if kind == 4:
        cat = rng.choice(sorted(md.CATEGORY_EN))
        w = rng.choice(sorted(md.CATEGORY_EN[cat].values()))
        return f"{w}是一种{md.CATEGORY_ZH[cat]}。"
    if kind == 5:
        w = md._words(rng, md.LIST_WORDS_ZH, 2, 6)
        k = rng.randrange(min(len(w), 4))
        return (
            f"这些词是 {' '.join(w)}。{md.ORDINALS_ZH[k]}个词是{w[k]}。"
            f"倒过来是 {' '.join(reversed(w))}。一共有{len(w)}个词。"
        )
    c, an, fr = (rng.choice(sorted(t.values())) for t in (md.COLORS, md.ANIMALS, md.FRUITS))
    return rng.choice(
        [
            f"今天天气很好，{c}的{an}在吃{fr}。",
            f"我看见一只{an}和一个{fr}。",
            f"小{an}喜欢{c}的{fr}。",
        ]
    )


def describe(rng: random.Random, lang: str) -> tuple[str, str]:
    """A word and a one-sentence description: the content of the format documents."""
    if lang == "en":
        w = rng.choice(sorted(md.EN_ZH))
        cat = next(c for c, t in md.CATEGORY_EN.items() if w in t)
        return w, f"{w.capitalize()} is {_a(cat)} {cat}."
    w = rng.choice(sorted(md.ZH_EN))
    cat = next(c for c, t in md.CATEGORY_EN.items() if w in t.values())
    return w, f"{w}是一种{md.CATEGORY_ZH[cat]}。"


def format_doc(rng: random.Random, defs: list[tuple[str, str]]) -> str:
    """One document in an Alpaca, chat or code format, with tasks unlike the benchmark's."""
    kind = rng.randrange(5)
    if kind == 0:
        w, d = describe(rng, "en")
        return f"### Instruction:\nDescribe the word in one sentence.\n\n### Input:\n{w}\n\n### Response:\n{d}"
    if kind == 1:
        w, d = describe(rng, "zh")
        return f"### 指令:\n用一句话介绍这个词。\n\n### 输入:\n{w}\n\n### 输出:\n{d}"
    if kind == 2 and defs:
        sig, doc = rng.choice(defs)
        return f"### Instruction:\nWhat does this function do?\n\n### Input:\n{sig}\n\n### Response:\n{doc}"
    if kind == 3:
        lang = rng.choice(["en", "zh"])
        text = f"<|system|>\n{rng.choice(md.SYSTEM_EN if lang == 'en' else md.SYSTEM_ZH)}<|end|>\n"
        for _ in range(rng.randint(1, 2)):
            w, d = describe(rng, lang)
            q = f"Tell me about {w}." if lang == "en" else f"介绍一下{w}。"
            text += f"<|user|>\n{q}<|end|>\n<|assistant|>\n{d}</s>\n"
        return text
    task, param, en, zh, body = rng.choice(md.CODE_TASKS)
    k = rng.randrange(2, 10)
    name = rng.choice([f"{task}_{k}" if "{k}" in body else task, rng.choice(md.CODE_NAMES)])
    doc = (en if rng.random() < 0.5 else zh).format(k=k)
    return f'def {name}({param}):\n    """{doc}"""\n    return {body.format(k=k)}\n'


def build_corpus(seed: int, n_generated: int = 60000) -> list[str]:
    rng = random.Random(seed)
    docs = stdlib_docs()
    defs = []
    for d in docs:
        head = d.split("\n", 2)
        if head[0].startswith("def ") and len(head) > 1 and '"""' in head[1]:
            line = head[1].strip().strip('"').strip()
            if line:
                defs.append((head[0].rstrip(":"), line))
    for _ in range(n_generated):
        r = rng.random()
        if r < 0.35:
            docs.append(" ".join(fact_en(rng) for _ in range(rng.randint(2, 5))))
        elif r < 0.7:
            docs.append("".join(fact_zh(rng) for _ in range(rng.randint(2, 5))))
        else:
            docs.append(format_doc(rng, defs))
    random.Random(seed + 1).shuffle(docs)
    return docs


# --- tokenizer -----------------------------------------------------------------------


def train_tokenizer(docs: list[str], vocab_size: int):  # -> PreTrainedTokenizerFast
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Whitespace, punctuation and digits are tokens of their own, so a word is the same
    # token after a space, after a newline or at the start of an answer: copying or
    # reversing words is an identity map on ids, which a tiny model learns quickly.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\s"), behavior="isolated"),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    # add_special_tokens=True prepends bos, as Llama tokenizers do.
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", SPECIAL.index("<s>"))]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens=SPECIAL[3:],
        model_max_length=MODEL["max_position_embeddings"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


# --- pretraining ---------------------------------------------------------------------


def token_stream(tokenizer, docs: list[str]) -> torch.Tensor:
    """All documents as one long id tensor, each as ``<s> text </s>`` (the Llama
    convention; ftsweep's worker starts every example with bos too)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.append(bos)
        ids.extend(enc)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def pretrain(
    model, stream: torch.Tensor, steps: int, batch: int, seq_len: int, lr: float, seed: int
) -> tuple[float, int]:
    """AdamW with linear warm-up and cosine decay on random windows of the stream.
    Returns (mean loss of the last 50 steps, tokens seen)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / warmup)
            * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
        ),
    )
    model.train()
    recent: list[float] = []
    start = time.time()
    for step in range(steps):
        offsets = torch.randint(0, len(stream) - seq_len - 1, (batch,), generator=gen)
        x = torch.stack([stream[o : o + seq_len] for o in offsets.tolist()])
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        recent = (recent + [loss.item()])[-50:]
        if step % 100 == 0 or step == steps - 1:
            print(
                f"step {step:5d}  loss {loss.item():.3f}  {time.time() - start:6.0f}s", flush=True
            )
    return sum(recent) / len(recent), steps * batch * seq_len


# --- saving --------------------------------------------------------------------------

CARD = """# tiny-base

A tiny pretrained causal language model shipped with ftsweep so that tests and the demo
fine-tune a *pretrained* model offline, on CPU, in seconds. It knows a small closed
vocabulary (colours, animals, fruits, numbers in English and Chinese; antonyms; small
sums) from prose, and a little Python; it is not useful for anything else.

Built by `scripts/build_tiny_base.py`; do not edit these files by hand.

| | |
|---|---|
| architecture | LlamaForCausalLM, hidden {hidden_size}, {num_hidden_layers} layers, {num_attention_heads} heads, MLP {intermediate_size}, tied embeddings, RoPE, max {max_position_embeddings} positions |
| parameters | {params:,} |
| tokenizer | byte-level BPE (tokenizers), vocab {vocab}, specials `{specials}` |
| chat template | `<|role|>\\n content <|end|>\\n` per system/user message, `<|assistant|>\\n content </s>\\n` per reply; `add_generation_prompt` appends `<|assistant|>\\n`; generation stops at `</s>` |
| command | `{command}` |
| seed | {seed} |
| corpus | {n_docs:,} documents, {n_chars:,} characters ({stdlib_chars:,} from the Python {py} stdlib source, the rest generated) |
| corpus sha256 | `{corpus_sha}` |
| pretraining | {steps} steps × batch {batch} × {seq_len} tokens = {tokens:,} tokens seen; AdamW lr {lr}, warm-up + cosine |
| final loss | {loss:.3f} (mean of the last 50 steps) |
| wall time | {wall:.0f} s on {threads} CPU threads ({machine}); torch {torch} |

The corpus states the benchmark facts (translations, antonyms, sums, which word is
first or second, word counts) in prose only. Documents in the Alpaca, chat and code
formats exist, but with other tasks (describe a word, explain a stdlib function), so the
base model knows the formats and the vocabulary yet cannot answer the benchmark tasks
without fine-tuning — see `benchmarks/learnability.py` for the measured numbers.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "tiny-base")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    # One thread: on a shared 2-core machine two OpenMP threads spent most of each step
    # waiting at barriers (measured ~1 s/step vs ~0.25 s/step with one thread).
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(args.threads)
    # Cheap insurance against denormal-float slow paths on CPU (the slowdown actually
    # measured here was OpenMP contention; see --threads).
    torch.set_flush_denormal(True)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    docs = build_corpus(SEED)
    corpus_sha = hashlib.sha256("\n\x00\n".join(docs).encode("utf-8")).hexdigest()
    tokenizer = train_tokenizer(docs, VOCAB_SIZE)
    stream = token_stream(tokenizer, docs)
    print(f"corpus {len(docs)} docs, {len(stream):,} tokens, sha256 {corpus_sha[:16]}", flush=True)

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL}
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        rope_theta=10000.0,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
        **MODEL,
    )
    model = LlamaForCausalLM(config)
    loss, tokens = pretrain(model, stream, args.steps, args.batch, args.seq_len, args.lr, SEED)
    wall = time.time() - t0

    args.out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<s>"],
        eos_token_id=[ids["</s>"], ids["<|end|>"]],
        pad_token_id=ids["<pad>"],
        do_sample=False,
        max_new_tokens=32,
    )
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    embed_template_in_config(args.out)
    command = "python scripts/build_tiny_base.py" + "".join(
        f" --{k.replace('_', '-')} {v}"
        for k, v in vars(args).items()
        if k != "out" and v != parser.get_default(k)
    )
    (args.out / "README.md").write_text(
        CARD.format(
            **MODEL,
            params=sum(p.numel() for p in model.parameters()),
            vocab=len(tokenizer),
            specials=" ".join(SPECIAL),
            command=command,
            seed=SEED,
            n_docs=len(docs),
            n_chars=sum(len(d) for d in docs),
            stdlib_chars=sum(len(d) for d in stdlib_docs()),
            py=platform.python_version(),
            corpus_sha=corpus_sha,
            steps=args.steps,
            batch=args.batch,
            seq_len=args.seq_len,
            tokens=tokens,
            lr=args.lr,
            loss=loss,
            wall=wall,
            threads=args.threads,
            machine=platform.machine(),
            torch=torch.__version__,
        ),
        encoding="utf-8",
    )
    print(f"saved to {args.out}: loss {loss:.3f}, {wall:.0f} s", flush=True)


def embed_template_in_config(out: Path) -> None:
    """Keep the chat template inside tokenizer_config.json (one file to read), whatever
    the installed transformers' default for where save_pretrained puts it."""
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "chat_template.jinja").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
