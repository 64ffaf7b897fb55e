"""Data handling: turning benchmark records into (prompt, completion) text."""

from ftsweep.data.formats import (
    TEMPLATES,
    dialogue_prompt,
    render_code,
    render_dialogue,
    render_instruction,
)

__all__ = ["TEMPLATES", "dialogue_prompt", "render_code", "render_dialogue", "render_instruction"]
