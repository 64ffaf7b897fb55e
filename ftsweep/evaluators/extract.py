"""Answer extraction: the part of a generation (and of a reference) that is compared.

Math-style tasks end a worked solution with the answer ("... #### 42", "\\boxed{42}",
"so she has 42 apples"); exact match and majority vote must compare 42 with 42, not
two paragraphs. ``eval.answer_extraction`` names an extractor or gives a regex with
one group; the worker applies it to every generated sample and to the reference
before the text evaluators score them, and keeps the raw text beside the answer.

Number normalisation, applied to every extracted answer that reads as a number:
thousands separators and a leading "$" or "+" go, and a zero fraction goes
("1,234.50" -> "1234.5", "42.0" -> "42", "-0" -> "0"). Other text is only stripped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

# A number as written in answers: optional sign, digits with optional thousands
# commas, optional fraction. "1,234" is one number; "1, 2" is two.
_NUMBER = r"[-+]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\$?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_GSM8K = re.compile(r"####\s*(" + _NUMBER + r")")


def normalize_number(text: str) -> str:
    """The canonical form of ``text`` if it is a number, else ``text`` stripped."""
    text = text.strip()
    bare = text.replace(",", "").replace("$", "").lstrip("+")
    if not bare or not re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)", bare):
        return text
    try:
        value = Decimal(bare)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return text
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def gsm8k(text: str) -> str | None:
    """The number after the last "####" (GSM8K's answer line)."""
    found = _GSM8K.findall(text)
    return normalize_number(found[-1]) if found else None


def last_number(text: str) -> str | None:
    """The last number anywhere in the text."""
    found = _NUMBER_RE.findall(text)
    return normalize_number(found[-1]) if found else None


def boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}``, braces balanced (``\\boxed{\\frac{1}{2}}``)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth, out = 1, list[str]()
    for ch in text[i:]:
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return normalize_number("".join(out))
        out.append(ch)
    return None  # unclosed: the generation was cut off before its answer ended


NAMED: dict[str, Callable[[str], str | None]] = {
    "gsm8k": gsm8k,
    "last_number": last_number,
    "boxed": boxed,
}


def check_regex(pattern: str) -> re.Pattern[str]:
    """Compile a user's answer regex; ValueError saying what is wrong and what is valid."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    if compiled.groups != 1:
        raise ValueError(
            f"the regex needs exactly one capturing group (the answer), it has "
            f"{compiled.groups}; e.g. 'answer is (\\S+)' (use (?:...) for other groups)"
        )
    return compiled


def regex_extractor(pattern: str) -> Callable[[str], str | None]:
    """The group of the regex's last match (the final answer comes last)."""
    compiled = check_regex(pattern)

    def extract(text: str) -> str | None:
        found = compiled.findall(text)
        return normalize_number(found[-1]) if found else None

    return extract


def build(spec: str | dict | None) -> Callable[[str], str | None] | None:
    """The extractor of an ``eval.answer_extraction`` value (a name or {regex: ...})."""
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            return NAMED[spec]
        except KeyError:
            raise ValueError(
                f"unknown answer extractor {spec!r}; valid: {', '.join(NAMED)} or {{regex: ...}}"
            ) from None
    return regex_extractor(str(spec["regex"]))


def reference_answer(extract: Callable[[str], str | None], reference: str) -> str:
    """A reference's answer: extracted when the extractor finds one ("... #### 42"),
    else the whole reference (a data set whose answers are already bare: "42")."""
    found = extract(reference)
    return found if found is not None else normalize_number(reference)
