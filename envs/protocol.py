"""The H* text protocol: parsing agent replies into actions, and the feedback line.

An agent answers each turn with text such as::

    <think>The clock should be on the wall to my left.</think><answer>rotate(-45,0)</answer>

``rotate(dyaw, dpitch)`` turns the head relative to the current direction;
``submit(yaw, pitch)`` gives an absolute direction and ends the episode.

*Strict* parsing reproduces H* Bench: exact lower-case tags in the layout of the prompt
format, the action name glued to its brackets, integer angles (spaces around the
numbers are allowed, as H*'s ``int(x.strip())`` allows them). *Lenient* parsing also
accepts a missing ``<think>``, any letter case, spaces anywhere in the action, decimal
angles, a trailing full stop and an unclosed final ``<answer>`` (generation often
stops on ``</answer>``). In both modes the angles must be finite and at most
``MAX_ANGLE`` in size, and ``well_formed`` says whether the reply would pass strict
parsing, which is what the format reward pays for.

The parser is written with plain string searches and anchored regular expressions
without nested repetition, so its cost is linear in the length of the text: a hostile
1 MB reply cannot make it hang, and no input makes it raise.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from panoseek.envs.geometry import clamp_pitch, wrap_yaw

ROTATE = "rotate"
SUBMIT = "submit"
INVALID = "invalid"
PROMPT_FORMATS = ("free_think", "no_think", "grounding")
MAX_ANGLE = 1e6  # larger angles are refused as absurd rather than wrapped

_STRICT_ACTION = re.compile(r"(rotate|submit)\(\s*([+-]?[0-9]+)\s*,\s*([+-]?[0-9]+)\s*\)", re.ASCII)
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_LENIENT_ACTION = re.compile(
    rf"\s*(rotate|submit)\s*\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)\s*\.?\s*", re.ASCII | re.IGNORECASE
)
_ANSWER_TAG = re.compile(r"<\s*(/?)\s*answer\s*>", re.ASCII | re.IGNORECASE)


@dataclass(frozen=True)
class ParsedAction:
    """One parsed reply.

    ``kind`` is ``"rotate"`` (``yaw``/``pitch`` relative), ``"submit"`` (absolute) or
    ``"invalid"`` (angles 0, ``error`` says why). ``well_formed`` is True when the
    whole reply follows the strict format of its prompt format.
    """

    kind: str
    yaw: float = 0.0
    pitch: float = 0.0
    well_formed: bool = False
    error: str = ""

    @property
    def valid(self) -> bool:
        return self.kind != INVALID


def invalid(error: str) -> ParsedAction:
    """An invalid action carrying its reason."""
    return ParsedAction(INVALID, error=error)


def parse_action(text: Any, *, strict: bool = False, prompt_format: str = "free_think") -> ParsedAction:
    """Parse an agent's reply; never raises (bad input gives an invalid action).

    ``prompt_format`` names the reply layout the strict check expects: ``free_think``
    (``<think>..</think><answer>..</answer>``), ``no_think`` (``<answer>..</answer>``)
    or ``grounding`` (``<think><observation>..</observation><reasoning>..</reasoning>
    </think><answer>..</answer>``).
    """
    if prompt_format not in PROMPT_FORMATS:
        return invalid(f"unknown prompt format {prompt_format!r}; expected one of {PROMPT_FORMATS}")
    if not isinstance(text, str):
        return invalid(f"expected the reply as a string, got {type(text).__name__}")
    answer, layout_error = _strict_answer(text, prompt_format)
    if answer is not None:
        match = _STRICT_ACTION.fullmatch(answer.strip())
        if match:
            action = _action(match, well_formed=True)
            if action.valid or strict:
                return action
        elif strict:
            return invalid(f"answer {_preview(answer)} is not rotate(int,int) or submit(int,int)")
    elif strict:
        return invalid(layout_error)
    answer, tag_error = _lenient_answer(text)
    if answer is None:
        return invalid(tag_error)
    match = _LENIENT_ACTION.fullmatch(answer)
    if not match:
        return invalid(f"answer {_preview(answer)} is not rotate(dyaw,dpitch) or submit(yaw,pitch)")
    return _action(match, well_formed=False)


def format_action(kind: str, yaw: float, pitch: float) -> str:
    """Canonical action text, e.g. ``rotate(-45,0)``: integer degrees as H* uses."""
    if kind not in (ROTATE, SUBMIT):
        raise ValueError(f"action kind must be {ROTATE!r} or {SUBMIT!r}, got {kind!r}")
    if not (math.isfinite(yaw) and math.isfinite(pitch)):
        raise ValueError(f"action angles must be finite, got ({yaw!r}, {pitch!r})")
    return f"{kind}({round(yaw)},{round(pitch)})"


def format_reply(action: str, *, think: str = "", observation: str = "", prompt_format: str = "free_think") -> str:
    """A complete well-formed reply in the layout of ``prompt_format``."""
    if prompt_format == "free_think":
        return f"<think>{think}</think><answer>{action}</answer>"
    if prompt_format == "no_think":
        return f"<answer>{action}</answer>"
    if prompt_format == "grounding":
        return (
            f"<think><observation>{observation}</observation><reasoning>{think}</reasoning></think>"
            f"<answer>{action}</answer>"
        )
    raise ValueError(f"unknown prompt format {prompt_format!r}; expected one of {PROMPT_FORMATS}")


def feedback_text(yaw: float, pitch: float) -> str:
    """H*'s direction line, integer degrees: ``your current direction (yaw,pitch) is (315,0)``."""
    return f"your current direction (yaw,pitch) is ({round(wrap_yaw(round(yaw)))},{round(clamp_pitch(pitch))})"


# ---------------------------------------------------------------------------- helpers


def _action(match: re.Match, *, well_formed: bool) -> ParsedAction:
    """Build the action from a matched ``name(a, b)``; refuse non-finite or absurd angles."""
    kind = match.group(1).lower()
    angles = []
    for text in (match.group(2), match.group(3)):
        value = float(text)  # the regex admits only decimal literals; too large gives inf
        if not math.isfinite(value) or abs(value) > MAX_ANGLE:
            return invalid(f"angle {_preview(text)} is not a finite number of at most {MAX_ANGLE:g} degrees")
        angles.append(value)
    if kind == SUBMIT and not -90.0 <= angles[1] <= 90.0:
        return invalid(f"submitted pitch {angles[1]:g} is outside [-90, 90]")
    return ParsedAction(kind, angles[0], angles[1], well_formed=well_formed)


def _strict_answer(text: str, prompt_format: str) -> tuple[str | None, str]:
    """The answer content if ``text`` has exactly the tag layout of ``prompt_format``."""
    body = text.strip()
    if not body.endswith("</answer>"):
        return None, "reply does not end with </answer>"
    start = body.rfind("<answer>")
    if start < 0:
        return None, "reply has no <answer> tag"
    answer = body[start + len("<answer>") : -len("</answer>")]
    if "</answer>" in answer:
        return None, "reply has nested or repeated <answer> tags"
    head = body[:start].strip()
    if prompt_format == "no_think":
        return (answer, "") if not head else (None, "text before <answer> (the no_think format has no <think>)")
    if not (head.startswith("<think>") and head.endswith("</think>")):
        return None, "reply is not <think>...</think><answer>...</answer>"
    thought = head[len("<think>") : -len("</think>")]
    if "<think>" in thought or "</think>" in thought or "<answer>" in thought:
        return None, "reply has nested or repeated <think>/<answer> tags"
    if prompt_format == "grounding" and not _is_grounded(thought.strip()):
        return None, "<think> must hold <observation>...</observation><reasoning>...</reasoning>"
    return answer, ""


def _is_grounded(thought: str) -> bool:
    """Whether a thought is exactly ``<observation>..</observation> <reasoning>..</reasoning>``."""
    if not (thought.startswith("<observation>") and thought.endswith("</reasoning>")):
        return False
    middle = thought[len("<observation>") : -len("</reasoning>")]
    parts = middle.split("</observation>")
    return len(parts) == 2 and parts[1].strip().startswith("<reasoning>") and "<reasoning>" not in parts[0]


def _lenient_answer(text: str) -> tuple[str | None, str]:
    """Content of the last ``<answer>`` block (any case, closing tag optional at the end)."""
    tags = list(_ANSWER_TAG.finditer(text))
    opens = [tag for tag in tags if not tag.group(1)]
    if not opens:
        return None, "reply has no <answer> tag"
    last_open = opens[-1]
    closes = [tag for tag in tags if tag.group(1) and tag.start() > last_open.start()]
    if len(closes) > 1:
        return None, "reply has nested or unbalanced <answer> tags"
    end = closes[0].start() if closes else len(text)
    return text[last_open.end() : end], ""


def _preview(text: str, limit: int = 40) -> str:
    """Short excerpt of possibly huge text for error messages, escaped to printable ASCII."""
    text = text.strip()
    return ascii(text if len(text) <= limit else text[:limit] + "...")
