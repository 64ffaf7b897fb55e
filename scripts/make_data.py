"""Generate the embedded default benchmark: instruction, dialogue and code data.

    python scripts/make_data.py              # writes data/<family>/{train,eval,test}.jsonl
                                             # and data/math/ (GSM8K-style problems),
                                             # data/preference/ and data/unpaired/
    python scripts/make_data.py --seed 0 --out data

Every task is built from small closed vocabularies (colour, animal, fruit and number
words in English and Chinese, antonym pairs) whose words are single tokens of the
tiny-base tokenizer, so a tiny model can learn the tasks with a short fine-tune. The
vocabularies also feed the pretraining corpus (scripts/build_tiny_base.py), which states
the facts in prose but never in the fine-tuning formats: the base model knows the words,
not the tasks.

Same seed -> same bytes: one ``random.Random(seed)`` per family, fixed key order,
``ensure_ascii=False``, ``\\n`` line endings.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

Record = dict[str, Any]

# --- closed vocabularies -------------------------------------------------------------

COLORS = {
    "red": "红色",
    "blue": "蓝色",
    "green": "绿色",
    "yellow": "黄色",
    "black": "黑色",
    "white": "白色",
    "purple": "紫色",
    "pink": "粉色",
    "brown": "棕色",
    "gray": "灰色",
}
ANIMALS = {
    "cat": "猫",
    "dog": "狗",
    "fish": "鱼",
    "bird": "鸟",
    "horse": "马",
    "cow": "牛",
    "sheep": "羊",
    "pig": "猪",
    "duck": "鸭",
    "tiger": "虎",
}
FRUITS = {
    "apple": "苹果",
    "banana": "香蕉",
    "pear": "梨",
    "grape": "葡萄",
    "peach": "桃",
    "lemon": "柠檬",
    "melon": "瓜",
    "cherry": "樱桃",
}
NUMBERS = {
    "zero": "零",
    "one": "一",
    "two": "二",
    "three": "三",
    "four": "四",
    "five": "五",
    "six": "六",
    "seven": "七",
    "eight": "八",
    "nine": "九",
    "ten": "十",
}
CATEGORY_EN = {"color": COLORS, "animal": ANIMALS, "fruit": FRUITS, "number": NUMBERS}
CATEGORY_ZH = {"color": "颜色", "animal": "动物", "fruit": "水果", "number": "数字"}
ANTONYMS_EN = [
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("up", "down"),
    ("left", "right"),
    ("old", "new"),
    ("happy", "sad"),
    ("high", "low"),
    ("early", "late"),
    ("long", "short"),
    ("full", "empty"),
    ("strong", "weak"),
    ("wet", "dry"),
    ("day", "night"),
    ("open", "closed"),
    ("rich", "poor"),
]
ANTONYMS_ZH = [
    ("大", "小"),
    ("多", "少"),
    ("上", "下"),
    ("左", "右"),
    ("冷", "热"),
    ("快", "慢"),
    ("高", "低"),
    ("长", "短"),
    ("新", "旧"),
    ("黑", "白"),
    ("早", "晚"),
    ("前", "后"),
    ("开", "关"),
    ("好", "坏"),
    ("远", "近"),
    ("东", "西"),
]
ORDINALS_EN = ["first", "second", "third", "fourth"]
ORDINALS_ZH = ["第一", "第二", "第三", "第四"]

EN_ZH: dict[str, str] = {**COLORS, **ANIMALS, **FRUITS, **NUMBERS}
ZH_EN = {zh: en for en, zh in EN_ZH.items()}
LIST_WORDS_EN = sorted([*COLORS, *ANIMALS, *FRUITS])
LIST_WORDS_ZH = sorted([*COLORS.values(), *ANIMALS.values(), *FRUITS.values()])


def antonym_map(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Both directions of each antonym pair."""
    return {**dict(pairs), **{b: a for a, b in pairs}}


# --- instruction tasks ---------------------------------------------------------------
# Each task: rng -> (instruction, input, output). "Keyed" tasks have a large input space;
# their (instruction, input) pairs in eval/test are kept out of train. Lookup tasks have
# tiny tables, so every entry appears in train: they test that the *task* was learned.

Task = Callable[[random.Random], tuple[str, str, str]]


def _words(rng: random.Random, pool: list[str], lo: int = 3, hi: int = 4) -> list[str]:
    return rng.sample(pool, rng.randint(lo, hi))


# The lookup tasks draw from part of each table so that a ~250-step fine-tune sees every
# entry many times (measured: with all 39 words, translation stayed under 40%).
TRANSLATE_EN_ZH = dict(COLORS)
TASK_ANTONYMS_EN = ANTONYMS_EN[:8]
TASK_ANTONYMS_ZH = ANTONYMS_ZH[:8]


def translate_en_zh(rng: random.Random) -> tuple[str, str, str]:
    word = rng.choice(sorted(TRANSLATE_EN_ZH))
    return (
        rng.choice(["Translate the word into Chinese.", "Give the Chinese word."]),
        word,
        TRANSLATE_EN_ZH[word],
    )


def translate_zh_en(rng: random.Random) -> tuple[str, str, str]:
    en = rng.choice(sorted(TRANSLATE_EN_ZH))
    return rng.choice(["把这个词翻译成英文。", "写出这个词的英文。"]), TRANSLATE_EN_ZH[en], en


def antonym_en(rng: random.Random) -> tuple[str, str, str]:
    table = antonym_map(TASK_ANTONYMS_EN)
    word = rng.choice(sorted(table))
    return rng.choice(["Give the opposite of the word.", "What is the antonym?"]), word, table[word]


def antonym_zh(rng: random.Random) -> tuple[str, str, str]:
    table = antonym_map(TASK_ANTONYMS_ZH)
    word = rng.choice(sorted(table))
    return rng.choice(["写出这个字的反义词。", "这个字的反义词是什么？"]), word, table[word]


def number_to_digit_en(rng: random.Random) -> tuple[str, str, str]:
    i = rng.randrange(len(NUMBERS))
    return "Write the number as a digit.", list(NUMBERS)[i], str(i)


def number_to_digit_zh(rng: random.Random) -> tuple[str, str, str]:
    i = rng.randrange(len(NUMBERS))
    return "把这个数写成阿拉伯数字。", list(NUMBERS.values())[i], str(i)


def category_en(rng: random.Random) -> tuple[str, str, str]:
    cat = rng.choice(sorted(CATEGORY_EN))
    word = rng.choice(sorted(CATEGORY_EN[cat]))
    return "Is the word a color, animal, fruit or number?", word, cat


def category_zh(rng: random.Random) -> tuple[str, str, str]:
    cat = rng.choice(sorted(CATEGORY_EN))
    word = rng.choice(sorted(CATEGORY_EN[cat].values()))
    return "这个词是颜色、动物、水果还是数字？", word, CATEGORY_ZH[cat]


def add_en(rng: random.Random) -> tuple[str, str, str]:
    a, b = rng.randrange(5), rng.randrange(5)
    return "Add the two numbers.", f"{a} {b}", str(a + b)


def add_zh(rng: random.Random) -> tuple[str, str, str]:
    a, b = rng.randrange(5), rng.randrange(5)
    return "计算两个数的和。", f"{a} {b}", str(a + b)


def reverse_words_en(rng: random.Random) -> tuple[str, str, str]:
    w = _words(rng, LIST_WORDS_EN, 2, 3)
    return "Reverse the order of the words.", " ".join(w), " ".join(reversed(w))


def reverse_words_zh(rng: random.Random) -> tuple[str, str, str]:
    w = _words(rng, LIST_WORDS_ZH, 2, 3)
    return "把这些词倒过来排列。", " ".join(w), " ".join(reversed(w))


def kth_word_en(rng: random.Random) -> tuple[str, str, str]:
    w = _words(rng, LIST_WORDS_EN)
    k = rng.randrange(2)  # first or second: positions a tiny model locates quickly
    return f"Return the {ORDINALS_EN[k]} word.", " ".join(w), w[k]


def kth_word_zh(rng: random.Random) -> tuple[str, str, str]:
    w = _words(rng, LIST_WORDS_ZH)
    k = rng.randrange(2)
    return f"给出{ORDINALS_ZH[k]}个词。", " ".join(w), w[k]


def count_words_en(rng: random.Random) -> tuple[str, str, str]:
    w = _words(rng, LIST_WORDS_EN, 2, 6)
    return "How many words are there?", " ".join(w), str(len(w))


def count_words_zh(rng: random.Random) -> tuple[str, str, str]:
    w = _words(rng, LIST_WORDS_ZH, 2, 6)
    return "一共有几个词？", " ".join(w), str(len(w))


# Copying tasks (reverse_words_*, kth_word_*) are defined but not in the default mix: a
# 250-step fine-tune of tiny-base scored 0-9% on them (measured), so they only added
# noise. Pass ``tasks=`` to instruction_record to use them in other data sets.
EXTRA_TASKS: dict[str, tuple[str, Task, bool]] = {
    "reverse_words_en": ("en", reverse_words_en, True),
    "reverse_words_zh": ("zh", reverse_words_zh, True),
    "kth_word_en": ("en", kth_word_en, True),
    "kth_word_zh": ("zh", kth_word_zh, True),
}
INSTRUCTION_TASKS: dict[str, tuple[str, Task, bool]] = {
    # name: (lang, generator, keyed)
    "translate_en_zh": ("en", translate_en_zh, False),
    "translate_zh_en": ("zh", translate_zh_en, False),
    "antonym_en": ("en", antonym_en, False),
    "antonym_zh": ("zh", antonym_zh, False),
    "number_to_digit_en": ("en", number_to_digit_en, False),
    "number_to_digit_zh": ("zh", number_to_digit_zh, False),
    "category_en": ("en", category_en, False),
    "category_zh": ("zh", category_zh, False),
    "add_en": ("en", add_en, False),
    "add_zh": ("zh", add_zh, False),
    "count_words_en": ("en", count_words_en, True),
    "count_words_zh": ("zh", count_words_zh, True),
}


def instruction_record(rng: random.Random, task: str) -> Record:
    lang, gen, _ = {**INSTRUCTION_TASKS, **EXTRA_TASKS}[task]
    instruction, inp, out = gen(rng)
    return {"instruction": instruction, "input": inp, "output": out, "lang": lang, "task": task}


# --- dialogue tasks ------------------------------------------------------------------
# A turn generator returns (user, assistant). Conversations are 1-3 turns; a "recall"
# conversation asks, in its last turn, for a word given turns earlier, so the model must
# look back across turns, not only at the last question.

SYSTEM_EN = ["You are a helpful assistant.", "You are a short and exact assistant."]
SYSTEM_ZH = ["你是一个乐于助人的助手。", "你是一个简洁准确的助手。"]
Turn = tuple[str, str]


def _question(rng: random.Random, lang: str) -> tuple[str, Turn]:
    kind = rng.choice(["translate", "antonym", "add", "kth"])
    if kind == "translate":
        w = rng.choice(sorted(EN_ZH))
        turn = (
            (f"What is {w} in Chinese?", EN_ZH[w])
            if lang == "en"
            else (f"{EN_ZH[w]}的英文是什么？", w)
        )
    elif kind == "antonym":
        table = antonym_map(ANTONYMS_EN if lang == "en" else ANTONYMS_ZH)
        w = rng.choice(sorted(table))
        turn = (
            (f"What is the opposite of {w}?", table[w])
            if lang == "en"
            else (f"{w}的反义词是什么？", table[w])
        )
    elif kind == "add":
        a, b = rng.randrange(10), rng.randrange(10)
        turn = (
            (f"What is {a} plus {b}?", str(a + b))
            if lang == "en"
            else (f"{a}加{b}等于几？", str(a + b))
        )
    else:
        w = _words(rng, LIST_WORDS_EN if lang == "en" else LIST_WORDS_ZH)
        k = rng.randrange(len(w))
        if lang == "en":
            turn = (f"Which is the {ORDINALS_EN[k]} word: {' '.join(w)}?", w[k])
        else:
            turn = (f"{' '.join(w)} 中{ORDINALS_ZH[k]}个词是什么？", w[k])
    return f"{kind}_{lang}", turn


def dialogue_record(rng: random.Random, lang: str) -> Record:
    turns: list[Turn] = []
    if rng.random() < 0.35:
        w = rng.choice(LIST_WORDS_EN if lang == "en" else LIST_WORDS_ZH)
        turns.append(
            (f"Remember the word {w}.", "OK.") if lang == "en" else (f"记住这个词：{w}。", "好的。")
        )
        turns += [_question(rng, lang)[1] for _ in range(rng.randint(0, 1))]
        turns.append(
            ("Which word did I ask you to remember?", w)
            if lang == "en"
            else ("我让你记住的词是什么？", w)
        )
        task = f"recall_{lang}"
    else:
        turns += [_question(rng, lang)[1] for _ in range(rng.randint(0, 2))]
        task, last = _question(rng, lang)
        turns.append(last)
    conv: list[dict[str, str]] = []
    if rng.random() < 0.7:
        conv.append(
            {"from": "system", "value": rng.choice(SYSTEM_EN if lang == "en" else SYSTEM_ZH)}
        )
    for user, assistant in turns:
        conv += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
    return {"conversations": conv, "lang": lang, "task": task}


# --- code tasks ----------------------------------------------------------------------
# (task, parameter, English problem, Chinese problem, body); {k} is a small constant.

CODE_TASKS: list[tuple[str, str, str, str, str]] = [
    ("add", "x", "returns x plus {k}.", "返回 x 加 {k} 的结果。", "x + {k}"),
    ("sub", "x", "returns x minus {k}.", "返回 x 减 {k} 的结果。", "x - {k}"),
    ("mul", "x", "returns x times {k}.", "返回 x 乘以 {k} 的结果。", "x * {k}"),
    ("square", "x", "returns the square of x.", "返回 x 的平方。", "x * x"),
    (
        "divisible",
        "x",
        "returns True if x is divisible by {k}, else False.",
        "如果 x 能被 {k} 整除则返回 True，否则返回 False。",
        "x % {k} == 0",
    ),
    (
        "greater",
        "x",
        "returns True if x is greater than {k}, else False.",
        "如果 x 大于 {k} 则返回 True，否则返回 False。",
        "x > {k}",
    ),
    (
        "index",
        "xs",
        "returns the item at index {k} of the list xs.",
        "返回列表 xs 中下标为 {k} 的元素。",
        "xs[{k}]",
    ),
    (
        "last",
        "xs",
        "returns the last item of the list xs.",
        "返回列表 xs 的最后一个元素。",
        "xs[-1]",
    ),
    (
        "reverse",
        "xs",
        "returns the list xs in reverse order.",
        "返回倒序排列的列表 xs。",
        "xs[::-1]",
    ),
    ("sum", "xs", "returns the sum of the list xs.", "返回列表 xs 的元素之和。", "sum(xs)"),
    (
        "max",
        "xs",
        "returns the largest item of the list xs.",
        "返回列表 xs 中最大的元素。",
        "max(xs)",
    ),
    (
        "min",
        "xs",
        "returns the smallest item of the list xs.",
        "返回列表 xs 中最小的元素。",
        "min(xs)",
    ),
    ("len", "xs", "returns the length of the list xs.", "返回列表 xs 的长度。", "len(xs)"),
    (
        "count",
        "xs",
        "returns how many times {k} appears in the list xs.",
        "返回 {k} 在列表 xs 中出现的次数。",
        "xs.count({k})",
    ),
    (
        "repeat",
        "s",
        "returns the string s repeated {k} times.",
        "返回把字符串 s 重复 {k} 次的结果。",
        "s * {k}",
    ),
    ("upper", "s", "returns the string s in upper case.", "返回字符串 s 的大写形式。", "s.upper()"),
]
CODE_NAMES = ["solve", "compute", "helper", "calc", "process", "transform", "func", "answer"]


def _code_arg(rng: random.Random, param: str) -> Any:
    if param == "x":
        return rng.randrange(-5, 30)
    if param == "xs":
        return [rng.randrange(0, 6) for _ in range(rng.randint(4, 6))]
    return rng.choice(LIST_WORDS_EN)


def code_record(rng: random.Random, lang: str) -> Record:
    task, param, en, zh, body = rng.choice(CODE_TASKS)
    k = rng.randrange(0, 4) if task in ("index", "count") else rng.randrange(2, 10)
    name = rng.choice(CODE_NAMES)
    sig = f"{name}({param})"
    problem = f"Write a function {sig} that {en}" if lang == "en" else f"编写函数 {sig}，{zh}"
    solution = f"def {sig}:\n    return {body}\n".format(k=k)
    namespace: dict[str, Any] = {}
    exec(solution, namespace)  # our own generated source: computes the expected values
    tests = []
    for _ in range(3):
        arg = _code_arg(rng, param)
        tests.append(f"assert {name}({arg!r}) == {namespace[name](arg)!r}")
    return {
        "problem": problem.format(k=k),
        "entry_point": name,
        "solution": solution,
        "tests": tests,
        "lang": lang,
        "task": f"{task}_{lang}",
    }


# --- splits and files ----------------------------------------------------------------

SPLITS = ("test", "eval", "train")  # generated in this order; see generate_family
SIZES: dict[str, dict[str, int]] = {
    "instruction": {"train": 3000, "eval": 200, "test": 200},
    "dialogue": {"train": 1500, "eval": 200, "test": 200},
    "code": {"train": 1500, "eval": 200, "test": 200},
}


def _instruction(rng: random.Random) -> tuple[Record, str | None]:
    task = rng.choice(sorted(INSTRUCTION_TASKS))
    rec = instruction_record(rng, task)
    keyed = INSTRUCTION_TASKS[task][2]
    return rec, (f"{task}\t{rec['instruction']}\t{rec['input']}" if keyed else None)


def _dialogue(rng: random.Random) -> tuple[Record, str | None]:
    rec = dialogue_record(rng, rng.choice(["en", "zh"]))
    return rec, json.dumps(rec["conversations"], ensure_ascii=False)


def _code(rng: random.Random) -> tuple[Record, str | None]:
    rec = code_record(rng, rng.choice(["en", "zh"]))
    return rec, rec["problem"]


GENERATORS: dict[str, Callable[[random.Random], tuple[Record, str | None]]] = {
    "instruction": _instruction,
    "dialogue": _dialogue,
    "code": _code,
}


def generate_family(family: str, seed: int) -> dict[str, list[Record]]:
    """All splits of one family. Held-out splits are drawn first; a train record whose
    key (for tasks with a large input space) occurs in eval or test is redrawn, so test
    inputs of those tasks are unseen in training."""
    rng = random.Random(f"{family}:{seed}")
    held: set[str] = set()
    out: dict[str, list[Record]] = {}
    for split in SPLITS:
        records: list[Record] = []
        keys: set[str] = set()
        while len(records) < SIZES[family][split]:
            rec, key = GENERATORS[family](rng)
            if key is not None and key in held:
                continue
            if key is not None:
                keys.add(key)
            records.append({"id": f"{family}-{split}-{len(records):05d}", **rec})
        held |= keys
        out[split] = records
    return out


def write_jsonl(path: Path, records: list[Record]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


# --- general-text probe (the forgetting evaluator) -----------------------------------

PROBE_SIZE = 64  # paragraphs, half English, half Chinese: a forward pass of well under 1 s
PROBE_SEED_OFFSET = 1000  # its own random stream: the task splits never shift it


def _probe_sentence_en(rng: random.Random) -> str:
    """A plain statement of a fact the tiny model learned in pretraining, not a task."""
    kind = rng.randrange(5)
    if kind == 0:
        w = rng.choice(sorted(EN_ZH))
        return f"The Chinese word for {w} is {EN_ZH[w]}."
    if kind == 1:
        a, b = rng.choice(ANTONYMS_EN)
        return f"The opposite of {a} is {b}."
    if kind == 2:
        a, b = rng.randrange(10), rng.randrange(10)
        return f"{a} plus {b} is {a + b}."
    if kind == 3:
        cat = rng.choice(sorted(CATEGORY_EN))
        w = rng.choice(sorted(CATEGORY_EN[cat]))
        return f"{w} is {'an' if w[0] in 'aeiou' else 'a'} {cat}."
    c, an, fr = (rng.choice(sorted(t)) for t in (COLORS, ANIMALS, FRUITS))
    return f"The {c} {an} eats {'an' if fr[0] in 'aeiou' else 'a'} {fr}."


def _probe_sentence_zh(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        w = rng.choice(sorted(EN_ZH))
        return f"{w}的中文是{EN_ZH[w]}。"
    if kind == 1:
        a, b = rng.choice(ANTONYMS_ZH)
        return f"{a}的反义词是{b}。"
    if kind == 2:
        a, b = rng.randrange(10), rng.randrange(10)
        return f"{a}加{b}等于{a + b}。"
    if kind == 3:
        cat = rng.choice(sorted(CATEGORY_EN))
        w = rng.choice(sorted(CATEGORY_EN[cat].values()))
        return f"{w}是一种{CATEGORY_ZH[cat]}。"
    c, an, fr = (rng.choice(sorted(t.values())) for t in (COLORS, ANIMALS, FRUITS))
    return f"小{an}喜欢{c}的{fr}。"


def general_probe(seed: int) -> list[Record]:
    """Held-out general text: prose of the kind tiny-base was pretrained on.

    No fine-tuning format (no instruction, no chat turns), so its loss measures what a
    fine-tune does to the model's general language ability, not the task.
    """
    rng = random.Random(seed + PROBE_SEED_OFFSET)
    records = []
    for i in range(PROBE_SIZE):
        lang = "en" if i % 2 == 0 else "zh"
        sentence = _probe_sentence_en if lang == "en" else _probe_sentence_zh
        sentences = [sentence(rng) for _ in range(rng.randint(2, 4))]
        text = (" " if lang == "en" else "").join(sentences)
        records.append({"id": f"general-{i:03d}", "text": text, "lang": lang})
    return records


def write_probe(out: Path, seed: int) -> Path:
    """Write the general-text probe to ``out/probe/general.jsonl``; returns its path."""
    path = out / "probe" / "general.jsonl"
    write_jsonl(path, general_probe(seed))
    return path


# --- preference pairs (training.objective: dpo) -------------------------------------

PREFERENCE_SIZES = {"train": 1000, "eval": 200, "test": 200}
PREFERENCE_SEED_OFFSET = 2000  # its own random stream, like the probe's


def preference_pairs(seed: int) -> dict[str, list[Record]]:
    """Preference pairs built from the instruction records, split for split.

    chosen is the record's own (correct) answer; rejected is a plausible wrong one: the
    answer of another record of the same task (a colour for a colour, a digit for a
    digit, Chinese for Chinese), never equal to chosen. The first PREFERENCE_SIZES records
    of each split are used, so held-out prompts stay held out.
    """
    rng = random.Random(f"preference:{seed + PREFERENCE_SEED_OFFSET}")
    family = generate_family("instruction", seed)
    answers: dict[str, list[str]] = {}
    for records in family.values():
        for rec in records:
            answers.setdefault(rec["task"], [])
            if rec["output"] not in answers[rec["task"]]:
                answers[rec["task"]].append(rec["output"])
    out: dict[str, list[Record]] = {}
    for split in SPLITS:
        pairs: list[Record] = []
        for i, rec in enumerate(family[split][: PREFERENCE_SIZES[split]]):
            wrong = sorted(a for a in answers[rec["task"]] if a != rec["output"])
            pairs.append(
                {
                    "id": f"preference-{split}-{i:05d}",
                    "prompt": rec["instruction"],
                    "input": rec["input"],
                    "chosen": rec["output"],
                    "rejected": rng.choice(wrong),
                    "lang": rec["lang"],
                    "task": rec["task"],
                }
            )
        out[split] = pairs
    return out


def write_preference(out: Path, seed: int) -> list[Path]:
    """Write ``out/preference/{train,eval,test}.jsonl``; returns the written paths."""
    paths = []
    for split, records in preference_pairs(seed).items():
        path = out / "preference" / f"{split}.jsonl"
        write_jsonl(path, records)
        paths.append(path)
    return paths


UNPAIRED_SEED_OFFSET = 3000  # its own random stream: the other files stay byte-identical


def unpaired_answers(seed: int) -> dict[str, list[Record]]:
    """KTO's unpaired data: each preference pair gives ONE labelled answer.

    A seeded coin picks the pair's chosen answer (label true: desirable) or its rejected
    one (label false), so no prompt appears with both answers: the data is unpaired, as
    KTO's is in practice, and about half of it is desirable.
    """
    rng = random.Random(f"unpaired:{seed + UNPAIRED_SEED_OFFSET}")
    out: dict[str, list[Record]] = {}
    for split, pairs in preference_pairs(seed).items():
        records: list[Record] = []
        for pair in pairs:
            desirable = rng.random() < 0.5
            records.append(
                {
                    "id": pair["id"].replace("preference", "unpaired"),
                    "prompt": pair["prompt"],
                    "input": pair["input"],
                    "completion": pair["chosen"] if desirable else pair["rejected"],
                    "label": desirable,
                    "lang": pair["lang"],
                    "task": pair["task"],
                }
            )
        out[split] = records
    return out


def write_unpaired(out: Path, seed: int) -> list[Path]:
    """Write ``out/unpaired/{train,eval,test}.jsonl``; returns the written paths."""
    paths = []
    for split, records in unpaired_answers(seed).items():
        path = out / "unpaired" / f"{split}.jsonl"
        write_jsonl(path, records)
        paths.append(path)
    return paths


def write_all(out: Path, seed: int) -> list[Path]:
    """Write every family and split under ``out``; returns the written paths."""
    paths = []
    for family in GENERATORS:
        for split, records in generate_family(family, seed).items():
            path = out / family / f"{split}.jsonl"
            write_jsonl(path, records)
            paths.append(path)
    return paths


# --- math: GSM8K-style word problems ---------------------------------------------------
# Short arithmetic word problems whose worked solution ends in GSM8K's answer line
# "#### N", for evaluation with answer extraction and sampling (experiments/math.yaml).
# Kept apart from GENERATORS (its own directory, its own call in main()) so that the
# three shipped families stay byte-identical.

MATH_NAMES = ["Tom", "Ann", "Sam", "Lily", "Ben", "Mia"]
MATH_ITEMS = ["apples", "pears", "grapes", "peaches", "lemons", "melons", "bananas", "cherries"]
MATH_SIZES = {"train": 1000, "eval": 50, "test": 50}


def _math_problem(rng: random.Random) -> tuple[str, str, str]:
    """(kind, question, worked solution ending in '#### N'); operands 0-9, answers >= 0."""
    name, item = rng.choice(MATH_NAMES), rng.choice(MATH_ITEMS)
    kind = rng.choice(["add", "sub", "add_sub"])
    a, b = rng.randrange(10), rng.randrange(10)
    if kind == "add":
        q = f"{name} has {a} {item}. {name} gets {b} more. How many {item} does {name} have now?"
        return kind, q, f"{a} + {b} = {a + b}\n#### {a + b}"
    if kind == "sub":
        a, b = max(a, b), min(a, b)
        q = f"{name} has {a} {item} and gives {b} away. How many {item} are left?"
        return kind, q, f"{a} - {b} = {a - b}\n#### {a - b}"
    c = rng.randrange(a + b + 1)
    q = f"{name} has {a} {item}, buys {b} more and then eats {c}. How many {item} does {name} have?"
    return kind, q, f"{a} + {b} = {a + b}\n{a + b} - {c} = {a + b - c}\n#### {a + b - c}"


def generate_math(seed: int) -> dict[str, list[Record]]:
    """The math splits; a train problem that occurs in eval or test is redrawn."""
    rng = random.Random(f"math:{seed}")
    held: set[str] = set()
    out: dict[str, list[Record]] = {}
    for split in SPLITS:
        records: list[Record] = []
        seen: set[str] = set()
        while len(records) < MATH_SIZES[split]:
            kind, question, solution = _math_problem(rng)
            if question in held:
                continue
            seen.add(question)
            records.append(
                {
                    "id": f"math-{split}-{len(records):05d}",
                    "instruction": question,
                    "input": "",
                    "output": solution,
                    "lang": "en",
                    "task": f"math_{kind}",
                }
            )
        held |= seen
        out[split] = records
    return out


def write_math(out: Path, seed: int) -> list[Path]:
    """Write data/math/{train,eval,test}.jsonl; returns the written paths."""
    paths = []
    for split, records in generate_math(seed).items():
        path = out / "math" / f"{split}.jsonl"
        write_jsonl(path, records)
        paths.append(path)
    return paths


# --- public configs' layouts (experiments/external/) -----------------------------------
# The same shipped records, written in the field layouts that three public fine-tuning
# configs read, so their translations train unchanged but for the paths: MetaMathQA
# (peft's method_comparison: query/response/type/original_question; its GSM8K valid and
# test splits renamed to query/response), Alpaca JSONL (axolotl's `type: alpaca`) and
# LLaMA-Factory's demo files (alpaca_en_demo.json, identity.json: JSON lists).

IDENTITY_QUESTIONS = [
    "hi",
    "Hello",
    "Who are you?",
    "What is your name?",
    "Introduce yourself.",
    "Are you an AI?",
    "What can you do?",
    "Who made you?",
]
IDENTITY_ANSWER = "I am tiny-base, a small language model. I name colours, animals and numbers."


def _english(records: list[Record]) -> list[Record]:
    return [r for r in records if r["lang"] == "en"]


def _query(rec: Record) -> str:
    return f"{rec['instruction']} {rec['input']}".strip()


def external_layouts(seed: int) -> dict[str, Any]:
    """relative path -> records (a list written as JSONL, or as one JSON list for .json)."""
    inst = generate_family("instruction", seed)
    train, evals, test = (_english(inst[s]) for s in ("train", "eval", "test"))
    alpaca = [{k: r[k] for k in ("instruction", "input", "output")} for r in train]
    return {
        "metamathqa/train.jsonl": [
            {
                "query": _query(r),
                "response": r["output"],
                "type": r["task"],
                "original_question": _query(r),
            }
            for r in train[:1000]
        ],
        "metamathqa/valid.jsonl": [
            {"query": _query(r), "response": r["output"]} for r in evals[:50]
        ],
        "metamathqa/test.jsonl": [{"query": _query(r), "response": r["output"]} for r in test],
        "alpaca/gpt4_llm_cleaned.jsonl": alpaca[:1000],
        "alpaca/alpaca_en_demo.json": alpaca[1000:1500],
        "alpaca/identity.json": [
            {"instruction": q, "input": "", "output": IDENTITY_ANSWER} for q in IDENTITY_QUESTIONS
        ],
        "alpaca/test.jsonl": [{k: r[k] for k in ("instruction", "input", "output")} for r in test],
    }


def write_external(out: Path, seed: int) -> list[Path]:
    paths = []
    for rel, records in external_layouts(seed).items():
        path = out / "external" / rel
        if path.suffix == ".json":
            path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(records, ensure_ascii=False, indent=1)
            path.write_text(text + "\n", encoding="utf-8", newline="\n")
        else:
            write_jsonl(path, records)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    args = parser.parse_args()
    paths = write_all(args.out, args.seed) + write_math(args.out, args.seed)
    paths += write_external(args.out, args.seed)
    paths += write_preference(args.out, args.seed)
    paths += write_unpaired(args.out, args.seed)
    for path in [*paths, write_probe(args.out, args.seed)]:
        print(f"{path}  {sum(1 for _ in path.open(encoding='utf-8'))} records")


if __name__ == "__main__":
    main()
