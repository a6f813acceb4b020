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
stops on ``</answer>``). ``well_formed`` says whether the reply would pass strict
parsing, which is what the format reward pays for.

:func:`check_action` is the one action validator: the text parser, the environment's
structured actions (:func:`parse_structured`) and every wrapper go through it, so an
action is valid under one rule everywhere (finite angles of at most ``ANGLE_LIMIT``
degrees, a submitted pitch in [-90, 90]). :class:`ActionProtocol` bundles how one agent
speaks (its prompt format and strictness) and turns any agent output into a
:class:`ParsedAction`.

The parser is written with plain string searches and anchored regular expressions in
which no two repetitions can match the same characters, so its cost is linear in the
length of the text: a hostile 1 MB reply cannot make it hang, and no input makes it raise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from panoseek.envs.geometry import clamp_pitch, wrap_yaw

ROTATE = "rotate"
SUBMIT = "submit"
INVALID = "invalid"
PROMPT_FORMATS = ("free_think", "no_think", "grounding")
ANGLE_LIMIT = 360.0  # |angle| bound of every action (the action space's Box); larger is invalid

_STRICT_ACTION = re.compile(r"(rotate|submit)\(\s*([+-]?[0-9]+)\s*,\s*([+-]?[0-9]+)\s*\)", re.ASCII)
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
# Matched against stripped text with any final full stop removed, so no two \s* stand
# side by side (adjacent optional repeats backtrack quadratically on a failed match).
_LENIENT_ACTION = re.compile(rf"(rotate|submit)\s*\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)", re.ASCII | re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<\s*(?:(/)\s*)?answer\s*>", re.ASCII | re.IGNORECASE)


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
    body = answer.strip()
    body = body[:-1].rstrip() if body.endswith(".") else body
    match = _LENIENT_ACTION.fullmatch(body)
    if not match:
        return invalid(f"answer {_preview(answer)} is not rotate(dyaw,dpitch) or submit(yaw,pitch)")
    return _action(match, well_formed=False)


def check_action(kind: str, yaw: float, pitch: float, *, well_formed: bool = True) -> ParsedAction:
    """The one action validator: a rotate or submit with finite angles of at most
    ``ANGLE_LIMIT`` degrees, a submitted pitch in [-90, 90]; anything else is invalid."""
    if kind not in (ROTATE, SUBMIT):
        return invalid(f"unknown action kind {_describe(kind)}")
    for name, value in (("yaw", yaw), ("pitch", pitch)):
        if not (math.isfinite(value) and abs(value) <= ANGLE_LIMIT):
            return invalid(f"{name} {value:g} is not a finite angle in [-{ANGLE_LIMIT:g}, {ANGLE_LIMIT:g}] degrees")
    if kind == SUBMIT and not -90.0 <= pitch <= 90.0:
        return invalid(f"submitted pitch {pitch:g} is outside [-90, 90]")
    return ParsedAction(kind, float(yaw), float(pitch), well_formed=well_formed)


def parse_structured(action: Any) -> ParsedAction:
    """A structured action ``{"submit": 0 or 1, "yaw": a, "pitch": b}`` as a parsed action.

    Numbers are Python or numpy scalars (or 0-d arrays); bools, strings, other shapes
    and ints too large for a float are invalid, never an exception. A structured action
    is always well-formed (there is no text layout to get wrong).
    """
    if not isinstance(action, Mapping) or set(action) != {"submit", "yaw", "pitch"}:
        return invalid(f"expected a dict with keys 'submit', 'yaw' and 'pitch', got {_describe(action)}")
    submit = _scalar(action["submit"])
    if isinstance(submit, bool) or not isinstance(submit, (int, np.integer)) or submit not in (0, 1):
        return invalid(f"'submit' must be 0 or 1, got {_describe(action['submit'])}")
    angles = []
    for key in ("yaw", "pitch"):
        value = _scalar(action[key])
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return invalid(f"{key!r} must be a number, got {_describe(action[key])}")
        try:
            angles.append(float(value))
        except OverflowError:
            return invalid(f"{key!r} {_describe(value)} is too large for an angle")
    return check_action(SUBMIT if submit == 1 else ROTATE, *angles, well_formed=True)


def as_structured(action: ParsedAction) -> dict[str, Any]:
    """A parsed action as the environment's action-space dict; an invalid one has NaN angles
    (outside the space), so the environment counts the turn and changes nothing."""
    if not action.valid:
        return {"submit": 0, "yaw": math.nan, "pitch": math.nan}
    return {"submit": int(action.kind == SUBMIT), "yaw": action.yaw, "pitch": action.pitch}


@dataclass(frozen=True)
class ActionProtocol:
    """How one agent speaks: its reply layout (``prompt_format``) and strict H* parsing or not.

    :meth:`parse` reads any agent output: text through :func:`parse_action` in this
    layout, a dict through :func:`parse_structured`, anything else as invalid.
    """

    prompt_format: str = "free_think"
    strict: bool = False

    def __post_init__(self) -> None:
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"unknown prompt format {self.prompt_format!r}; expected one of {PROMPT_FORMATS}")

    def parse(self, output: Any) -> ParsedAction:
        """The action an agent's output stands for; never raises, whatever the object does."""
        try:
            if isinstance(output, str):
                return parse_action(str.__str__(output), strict=self.strict, prompt_format=self.prompt_format)
            if isinstance(output, Mapping):
                return parse_structured(output)
        except Exception as error:  # noqa: BLE001 - a hostile mapping's keys(), items(), __eq__ ...
            return invalid(f"unreadable {type(output).__name__} output ({type(error).__name__}: {_preview(str(error))})")
        return invalid(f"an action must be a string or a dict, got {type(output).__name__}")


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
    """Build the action from a matched ``name(a, b)`` (decimal literals only; huge ones give inf)."""
    return check_action(match.group(1).lower(), float(match.group(2)), float(match.group(3)), well_formed=well_formed)


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


def _scalar(value: Any) -> Any:
    """A 0-d numpy array as its item; anything else unchanged (other shapes stay invalid)."""
    return value.item() if isinstance(value, np.ndarray) and value.shape == () else value


def _describe(value: Any) -> str:
    """Short description of a bad action value for an error message."""
    text = ascii(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _preview(text: str, limit: int = 40) -> str:
    """Short excerpt of possibly huge text for error messages, escaped to printable ASCII."""
    text = text.strip()
    return ascii(text if len(text) <= limit else text[:limit] + "...")
