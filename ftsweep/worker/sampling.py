"""Sampled generation for the final evaluation (``eval.generation.do_sample``).

Several samples per prompt, seeded from the run's seed so a run's samples are the
same on every replay (same config, batch size and machine). Temperature and top-p
only: top-k is switched off, so a model's generation_config cannot add a filter the
experiment file does not show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ftsweep.worker.dataset import PadCollator


def _batches(items: list[Any], size: int) -> Any:
    for i in range(0, len(items), size):
        yield i // size, items[i : i + size]


def filter_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Logits outside the smallest set of tokens whose probability reaches top_p -> -inf.

    The most likely token always stays (as in transformers' TopPLogitsWarper).
    """
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cum - sorted_logits.softmax(dim=-1) >= top_p  # mass before it already >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


@torch.no_grad()
def decode_without_cache(
    model: Any,
    tok: Any,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int,
    device: torch.device,
    pick: Callable[[torch.Tensor], int],
) -> list[str]:
    """Decoding by full forward passes, one continuation per prompt, cut at EOS: ``pick``
    chooses each next token from its logits (greedy or sampled). For prompt-learning
    models, whose virtual tokens ``generate()`` drops (``evaluate.greedy_without_cache``)."""
    texts: list[str] = []
    for _, chunk in _batches(prompts, batch_size):
        rows = [tok(p, add_special_tokens=True)["input_ids"] for p in chunk]
        new: list[list[int]] = [[] for _ in rows]
        done = [False] * len(rows)
        for _ in range(max_new_tokens):
            seqs = [r + t for r, t in zip(rows, new, strict=True)]
            batch = PadCollator(tok.pad_token_id)([{"input_ids": q, "labels": q} for q in seqs])
            logits = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
            ).logits
            offset = logits.shape[1] - batch["input_ids"].shape[1]  # virtual tokens first
            for i, q in enumerate(seqs):
                if done[i]:
                    continue
                token = pick(logits[i, offset + len(q) - 1])
                done[i] = token == tok.eos_token_id
                if not done[i]:
                    new[i].append(token)
            if all(done):
                break
        texts += tok.batch_decode(new, skip_special_tokens=True)
    return texts


def sample_without_cache(
    model: Any,
    tok: Any,
    prompts: list[str],
    gen: dict[str, Any],
    max_new_tokens: int,
    batch_size: int,
    device: torch.device,
    seed: int,
) -> list[list[str]]:
    """Sampling by full forward passes, for prompt-learning models (see
    ``evaluate.greedy_without_cache`` for why generate() cannot be used for them)."""
    n = int(gen["num_samples"])
    rng = torch.Generator().manual_seed(seed)

    def pick(step_logits: torch.Tensor) -> int:
        step = step_logits.float().cpu() / float(gen["temperature"])
        probs = filter_top_p(step, float(gen["top_p"])).softmax(dim=-1)
        return int(torch.multinomial(probs, 1, generator=rng))

    repeated = [p for p in prompts for _ in range(n)]
    texts = decode_without_cache(model, tok, repeated, max_new_tokens, batch_size, device, pick)
    return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]


@torch.no_grad()
def sample(
    model: Any,
    tok: Any,
    prompts: list[str],
    gen: dict[str, Any],
    max_new_tokens: int,
    batch_size: int,
    device: torch.device,
    seed: int,
    prompt_learning: bool = False,
) -> list[list[str]]:
    """``num_samples`` sampled continuations per prompt, cut at EOS, in prompt order."""
    if prompt_learning:
        return sample_without_cache(
            model, tok, prompts, gen, max_new_tokens, batch_size, device, seed
        )
    n = int(gen["num_samples"])
    tok.padding_side = "left"
    out: list[list[str]] = []
    for index, chunk in _batches(prompts, batch_size):
        # One seed per batch: a batch's samples do not depend on how many came before.
        torch.manual_seed(seed * 1_000_003 + index)
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=True).to(device)
        gen_ids = model.generate(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=float(gen["temperature"]),
            top_p=float(gen["top_p"]),
            top_k=0,
            num_beams=1,
            num_return_sequences=n,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        texts = tok.batch_decode(gen_ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        out += [texts[i * n : (i + 1) * n] for i in range(len(chunk))]
    return out
