"""The text protocol: parsing agent replies into actions, and the feedback line.

An agent answers each turn with text such as::

    <think>The clock should be on the wall to my left.</think><answer>rotate(-45,0)</answer>

``rotate(dyaw, dpitch)`` turns the head relative to the current direction;
``submit(yaw, pitch)`` gives an absolute direction and ends the episode. Where the run
allows it (an opt-in extension, never under ``"hstar"``), ``zoom(yaw, pitch, fov)`` asks
for a narrower view toward an absolute direction without turning the head or using a
turn (see :class:`~panoseek.envs.env.PanoramaSearchEnv`).

Three parsers, chosen by ``strict``:

* ``False``, *lenient* (panoseek's default): any text before the last ``<answer>``
  block, any letter case, spaces anywhere in the action, decimal angles, a trailing
  full stop and an unclosed final ``<answer>`` (generation often stops on ``</answer>``).
* ``True``, *strict* (panoseek's own exact format): exact lower-case tags in the layout
  of the prompt format, the action name glued to its brackets, integer angles (spaces
  around the numbers allowed). It refuses much that H* executes.
* ``"hstar"`` (:func:`parse_hstar`): what the released H* environment executes, reply
  by reply, held to vectors recorded from that code (``tests/data``).

``well_formed`` says whether the reply earns the format reward: for the two panoseek
parsers, whether it passes strict parsing; for ``"hstar"``, H*'s own layout check.

:func:`check_action` is the one action validator: the text parsers, the environment's
structured actions (:func:`parse_structured`) and every wrapper go through it, so an
action is valid under one rule everywhere (finite angles of at most ``ANGLE_LIMIT``
degrees, a submitted pitch in [-90, 90]). :class:`ActionProtocol` bundles how one agent
speaks (its prompt format and parser) and turns any agent output into a
:class:`ParsedAction`.

The parsers are written with plain string searches and anchored regular expressions in
which no two repetitions can match the same characters, so their cost is linear in the
length of the text: a hostile 1 MB reply cannot make them hang, and no input makes them raise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from panoseek.envs.geometry import clamp_pitch, project_to_view, view_pixel_lonlat, wrap_yaw

ROTATE = "rotate"
SUBMIT = "submit"
ZOOM = "zoom"
INVALID = "invalid"
PROMPT_FORMATS = ("free_think", "no_think", "grounding")
HSTAR = "hstar"  # the value of ``strict`` that selects the released H* environment's parser
ANGLE_LIMIT = 360.0  # |angle| bound of every action (the action space's Box); larger is invalid
ZOOM_MIN_FOV = 5.0  # degrees: the narrowest zoom; the widest is just under the view's own FOV
ZOOMS_PER_TURN = 2  # zooms allowed between two turns; one more is an invalid action (it uses the turn)

_STRICT_ACTION = re.compile(r"(rotate|submit)\(\s*([+-]?[0-9]+)\s*,\s*([+-]?[0-9]+)\s*\)", re.ASCII)
_STRICT_ZOOM = re.compile(r"zoom\(\s*([+-]?[0-9]+)\s*,\s*([+-]?[0-9]+)\s*,\s*([+-]?[0-9]+)\s*\)", re.ASCII)
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
# Matched against stripped text with any final full stop removed, so no two \s* stand
# side by side (adjacent optional repeats backtrack quadratically on a failed match).
_LENIENT_ACTION = re.compile(rf"(rotate|submit)\s*\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)", re.ASCII | re.IGNORECASE)
_LENIENT_ZOOM = re.compile(rf"zoom\s*\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)", re.ASCII | re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<\s*(?:(/)\s*)?answer\s*>", re.ASCII | re.IGNORECASE)
# H*'s layouts: a literal, whitespace, a literal; searched left to right, each from where the last ended.
_HSTAR_THINK_ANSWER = re.compile(r"</think>\s*<answer>")
_HSTAR_GROUNDING = tuple(
    re.compile(pattern)
    for pattern in (r"<think>\s*<observation>", r"</observation>\s*<reasoning>", r"</reasoning>\s*</think>\s*<answer>")
)
_TURN_KEYS = ("submit", "yaw", "pitch")
_ZOOM_KEYS = ("submit", "zoom", "yaw", "pitch", "fov")
_HSTAR_TAGS = ("<think>", "</think>", "<answer>", "</answer>")  # H* deletes these from the answer


@dataclass(frozen=True)
class ParsedAction:
    """One parsed reply.

    ``kind`` is ``"rotate"`` (``yaw``/``pitch`` relative), ``"submit"`` (absolute),
    ``"zoom"`` (absolute, with the zoom view's horizontal ``fov``) or ``"invalid"``
    (angles 0, ``error`` says why). ``well_formed`` is True when the whole reply follows
    the strict format of its prompt format.
    """

    kind: str
    yaw: float = 0.0
    pitch: float = 0.0
    fov: float = 0.0  # zoom only
    well_formed: bool = False
    error: str = ""

    @property
    def valid(self) -> bool:
        return self.kind != INVALID


def invalid(error: str) -> ParsedAction:
    """An invalid action carrying its reason."""
    return ParsedAction(INVALID, error=error)


def parse_action(text: Any, *, strict: bool | str = False, prompt_format: str = "free_think") -> ParsedAction:
    """Parse an agent's reply; never raises (bad input gives an invalid action).

    ``strict`` is ``False`` (lenient), ``True`` (strict) or ``"hstar"`` (:func:`parse_hstar`).
    ``prompt_format`` names the reply layout the strict check expects: ``free_think``
    (``<think>..</think><answer>..</answer>``), ``no_think`` (``<answer>..</answer>``)
    or ``grounding`` (``<think><observation>..</observation><reasoning>..</reasoning>
    </think><answer>..</answer>``).
    """
    if prompt_format not in PROMPT_FORMATS:
        return invalid(f"unknown prompt format {prompt_format!r}; expected one of {PROMPT_FORMATS}")
    if not isinstance(text, str):
        return invalid(f"expected the reply as a string, got {type(text).__name__}")
    if strict == HSTAR:
        return parse_hstar(text, prompt_format)
    answer, layout_error = _strict_answer(text, prompt_format)
    if answer is not None:
        match = _STRICT_ACTION.fullmatch(answer.strip()) or _STRICT_ZOOM.fullmatch(answer.strip())
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
    match = _LENIENT_ACTION.fullmatch(body) or _LENIENT_ZOOM.fullmatch(body)
    if not match:
        return invalid(f"answer {_preview(answer)} is not rotate(dyaw,dpitch) or submit(yaw,pitch)")
    return _action(match, well_formed=False)


def parse_hstar(text: str, prompt_format: str = "free_think") -> ParsedAction:
    """Read a reply as the released H* environment does; never raises.

    H* deletes ``<image>``, finds the answer (``free_think``: the first ``<answer>`` block,
    after the first ``</think>`` when the reply starts with ``<think>``; ``no_think``:
    only a reply that is exactly one ``<answer>..</answer>`` span; ``grounding``: the first
    ``<think><observation>..</observation><reasoning>..</reasoning></think><answer>..</answer>``
    anywhere), deletes the think/answer tags inside it, keeps the first non-empty
    ``|``-separated part, which must start with ``rotate`` or ``submit``; the name is
    deleted, brackets are trimmed from both ends, and the first two comma-separated
    fields are read by Python's ``int`` (spaces, ``+``, underscores and any Unicode
    digits allowed). The format reward is H*'s anchored layout check of the whole reply.

    H* executes any integer; here an angle is brought inside the one validator's limits
    without changing what it does: a yaw beyond +-360 is taken modulo 360, a pitch turn
    beyond +-360 is cut to +-360 (the pitch is clamped to [-90, 90] after a turn either
    way), and a submitted pitch is clamped to [-90, 90]. That last step is the one
    deliberate difference: H* judges the raw pitch, which lies in no pitch window (so a
    submission such as ``submit(10,95)`` fails there unless the yaw window wraps), while
    here it is judged as the direction it can only mean, straight up or down.
    """
    if prompt_format not in PROMPT_FORMATS:
        return invalid(f"unknown prompt format {prompt_format!r}; expected one of {PROMPT_FORMATS}")
    text = text.replace("<image>", "")
    answer, well_formed = _hstar_answer(text, prompt_format)
    if answer is None:
        return invalid(f"reply has no answer H* would read in the {prompt_format} layout")
    for tag in _HSTAR_TAGS:
        answer = answer.replace(tag, "")
    action = next((part.strip() for part in answer.split("|") if part.strip()), "")
    kind = ROTATE if action.startswith(ROTATE) else SUBMIT if action.startswith(SUBMIT) else None
    if kind is None:
        return invalid(f"answer {_preview(action)} does not start with rotate or submit")
    fields = action.replace(kind, "").strip("()").split(",")
    try:
        yaw, pitch = int(fields[0]), int(fields[1])
    except (IndexError, ValueError):
        return invalid(f"answer {_preview(action)} does not give two integer angles")
    yaw = yaw if abs(yaw) <= ANGLE_LIMIT else yaw % 360
    limit = 90 if kind == SUBMIT else int(ANGLE_LIMIT)
    return check_action(kind, float(yaw), float(max(-limit, min(limit, pitch))), well_formed=well_formed)


def check_action(
    kind: str, yaw: float, pitch: float, *, fov: float | None = None, well_formed: bool = True
) -> ParsedAction:
    """The one action validator: a rotate, submit or zoom with finite angles of at most
    ``ANGLE_LIMIT`` degrees; a submitted or zoom pitch in [-90, 90]; a zoom's ``fov`` (and
    only a zoom's) finite in [``ZOOM_MIN_FOV``, 180). Anything else is invalid.

    What depends on the episode (whether the run allows zooms, the zoom being narrower
    than the view and inside it, the per-turn cap) the environment checks with
    :func:`check_zoom`."""
    if kind not in (ROTATE, SUBMIT, ZOOM):
        return invalid(f"unknown action kind {_describe(kind)}")
    for name, value in (("yaw", yaw), ("pitch", pitch)):
        if not (math.isfinite(value) and abs(value) <= ANGLE_LIMIT):
            return invalid(f"{name} {value:g} is not a finite angle in [-{ANGLE_LIMIT:g}, {ANGLE_LIMIT:g}] degrees")
    if kind == SUBMIT and not -90.0 <= pitch <= 90.0:
        return invalid(f"submitted pitch {pitch:g} is outside [-90, 90]")
    if kind != ZOOM:
        if fov is not None:
            return invalid(f"a {kind} takes no fov (only zoom does), got fov {_describe(fov)}")
        return ParsedAction(kind, float(yaw), float(pitch), well_formed=well_formed)
    if not -90.0 <= pitch <= 90.0:
        return invalid(f"zoom pitch {pitch:g} is outside [-90, 90]")
    if fov is None or not (math.isfinite(fov) and ZOOM_MIN_FOV <= fov < 180.0):
        return invalid(f"zoom fov {_describe(fov)} is not a number of degrees in [{ZOOM_MIN_FOV:g}, 180)")
    return ParsedAction(ZOOM, float(yaw), float(pitch), float(fov), well_formed=well_formed)


def zoom_inside_view(
    yaw: float, pitch: float, fov: float, view_yaw: float, view_pitch: float, view_fov: float, width: int, height: int,
) -> bool:
    """Whether the zoom view toward (yaw, pitch) with ``fov`` lies wholly inside the current
    view toward (view_yaw, view_pitch) with ``view_fov`` (both ``width x height``): the outer
    corners of its corner pixels are in view by ``geometry.view_position``'s rule (a pinhole
    view's edges are straight lines, so the corners decide). The one rule, for the
    environment's :func:`check_zoom` and for agents that aim zooms."""
    xs = np.array([-0.5, width - 0.5, -0.5, width - 0.5])
    ys = np.array([-0.5, -0.5, height - 0.5, height - 0.5])
    lons, lats = view_pixel_lonlat(xs, ys, yaw, pitch, fov, width, height)
    x, y, in_front = project_to_view(lons, lats, view_yaw, view_pitch, view_fov, width, height)
    return bool(in_front.all() and (x >= -0.5).all() and (x <= width - 0.5).all()
                and (y >= -0.5).all() and (y <= height - 0.5).all())


def check_zoom(action: ParsedAction, *, allowed: bool, view_fov: float, used: int, inside_view: bool) -> ParsedAction:
    """A zoom that :func:`check_action` passed, held to the episode: the run allows zooms
    (``allowed``), its fov is below the view's (``view_fov``), the zoom view lies inside the
    current view (``inside_view``) and fewer than ``ZOOMS_PER_TURN`` zooms were taken since
    the last turn (``used``). Any other action is returned unchanged."""
    if action.kind != ZOOM:
        return action
    if not allowed:
        return invalid("zoom is not enabled in this run (an opt-in extension: panoseek eval --zoom)")
    if not action.fov < view_fov:
        return invalid(f"zoom fov {action.fov:g} must be narrower than the view's {view_fov:g} degrees")
    if used >= ZOOMS_PER_TURN:
        return invalid(f"at most {ZOOMS_PER_TURN} zooms per turn; turn or submit now")
    if not inside_view:
        return invalid(f"zoom ({action.yaw:g},{action.pitch:g},{action.fov:g}) reaches outside the current view")
    return action


def check_zoom_protocol(zoom: bool, strict: bool | str) -> None:
    """Zoom is an extension of the protocol, so the H* protocol (``strict="hstar"``) refuses it:
    one ValueError, raised wherever the two meet (settings, the rollout loop, the text wrapper)."""
    if zoom and strict == HSTAR:
        raise ValueError("zoom is an extension of the protocol and is refused under the H* protocol "
                         "(strict='hstar', --preset hstar); drop zoom or use strict=True/False")


def parse_structured(action: Any) -> ParsedAction:
    """A structured action as a parsed action: ``{"submit": 0 or 1, "yaw": a, "pitch": b}``,
    or with zoom on ``{"submit": 0 or 1, "zoom": 0 or 1, "yaw": a, "pitch": b, "fov": f}``
    (``zoom`` 1 is ``zoom(a, b, f)`` and needs ``submit`` 0; ``zoom`` 0 ignores ``fov``).

    Numbers are Python or numpy scalars (or 0-d arrays); bools, strings, other shapes
    and ints too large for a float are invalid, never an exception. A structured action
    is always well-formed (there is no text layout to get wrong).
    """
    if not isinstance(action, Mapping) or set(action) not in (set(_TURN_KEYS), set(_ZOOM_KEYS)):
        return invalid(
            f"expected a dict with keys 'submit', 'yaw' and 'pitch' (and, to zoom, 'zoom' and 'fov'), "
            f"got {_describe(action)}"
        )
    flags = {}
    for key in ("submit", "zoom") if "zoom" in action else ("submit",):
        flag = _scalar(action[key])
        if isinstance(flag, bool) or not isinstance(flag, (int, np.integer)) or flag not in (0, 1):
            return invalid(f"{key!r} must be 0 or 1, got {_describe(action[key])}")
        flags[key] = int(flag)
    numbers = {}
    for key in ("yaw", "pitch", "fov") if flags.get("zoom") else ("yaw", "pitch"):
        value = _scalar(action[key])
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return invalid(f"{key!r} must be a number, got {_describe(action[key])}")
        try:
            numbers[key] = float(value)
        except OverflowError:
            return invalid(f"{key!r} {_describe(value)} is too large for an angle")
    if flags.get("zoom"):
        if flags["submit"]:
            return invalid("an action cannot both zoom and submit ('zoom' 1 needs 'submit' 0)")
        return check_action(ZOOM, numbers["yaw"], numbers["pitch"], fov=numbers["fov"], well_formed=True)
    return check_action(SUBMIT if flags["submit"] == 1 else ROTATE, numbers["yaw"], numbers["pitch"], well_formed=True)


def as_structured(action: ParsedAction) -> dict[str, Any]:
    """A parsed action as the environment's action-space dict; an invalid one has NaN angles
    (outside the space), so the environment counts the turn and changes nothing."""
    if not action.valid:
        return {"submit": 0, "yaw": math.nan, "pitch": math.nan}
    if action.kind == ZOOM:
        return {"submit": 0, "zoom": 1, "yaw": action.yaw, "pitch": action.pitch, "fov": action.fov}
    return {"submit": int(action.kind == SUBMIT), "yaw": action.yaw, "pitch": action.pitch}


@dataclass(frozen=True)
class ActionProtocol:
    """How one agent speaks: its reply layout (``prompt_format``) and parser (``strict``).

    ``strict`` is ``False`` (lenient), ``True`` (strict) or ``"hstar"`` (the released
    H* environment's parser, with its prompts and feedback: :attr:`hstar`).
    :meth:`parse` reads any agent output: text through :func:`parse_action` in this
    layout, a dict through :func:`parse_structured`, anything else as invalid.
    """

    prompt_format: str = "free_think"
    strict: bool | str = False

    def __post_init__(self) -> None:
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"unknown prompt format {self.prompt_format!r}; expected one of {PROMPT_FORMATS}")
        if isinstance(self.strict, str) and self.strict != HSTAR:
            raise ValueError(f"strict must be True, False or {HSTAR!r}, got {self.strict!r}")
        if self.strict != HSTAR:
            object.__setattr__(self, "strict", bool(self.strict))

    @property
    def hstar(self) -> bool:
        """Whether this protocol reproduces the released H* environment."""
        return self.strict == HSTAR

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


def format_action(kind: str, yaw: float, pitch: float, fov: float | None = None) -> str:
    """Canonical action text, e.g. ``rotate(-45,0)`` or ``zoom(30,-5,20)``: integer degrees as H* uses."""
    if kind not in (ROTATE, SUBMIT, ZOOM):
        raise ValueError(f"action kind must be {ROTATE!r}, {SUBMIT!r} or {ZOOM!r}, got {kind!r}")
    if (fov is None) != (kind != ZOOM):
        raise ValueError(f"action kind {kind!r} with fov {fov!r}: a zoom needs a fov, and only a zoom takes one")
    angles = (yaw, pitch) if fov is None else (yaw, pitch, fov)
    if not all(math.isfinite(angle) for angle in angles):
        raise ValueError(f"action angles must be finite, got {angles!r}")
    return f"{kind}({','.join(str(round(angle)) for angle in angles)})"


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
    """Build the action from a matched ``name(a, b)`` or ``zoom(a, b, c)`` (decimal literals
    only; huge ones give inf)."""
    if match.re in (_STRICT_ZOOM, _LENIENT_ZOOM):
        yaw, pitch, fov = (float(group) for group in match.groups())
        return check_action(ZOOM, yaw, pitch, fov=fov, well_formed=well_formed)
    return check_action(match.group(1).lower(), float(match.group(2)), float(match.group(3)), well_formed=well_formed)


def _hstar_answer(text: str, prompt_format: str) -> tuple[str | None, bool]:
    """The answer text H* reads from a reply (``None``: none) and whether H* pays its format."""
    body = text.strip()
    tail = len(body) - len("</answer>")
    if prompt_format == "no_think":
        if not (body.startswith("<answer>") and body.endswith("</answer>") and tail >= len("<answer>")):
            return None, False
        return body[len("<answer>") : body.find("</answer>", len("<answer>"))], True
    if prompt_format == "grounding":
        anchored = _hstar_grounding_end(body, anchored=True)
        start = _hstar_grounding_end(text, anchored=False)
        well_formed = anchored is not None and body.endswith("</answer>") and anchored <= tail
        return (None if start is None else _hstar_block_from(text, start, opened=True)), well_formed
    link = _HSTAR_THINK_ANSWER.search(body, len("<think>"))
    well_formed = body.startswith("<think>") and body.endswith("</answer>") and link is not None and link.end() <= tail
    if text.startswith("<think>"):
        close = text.find("</think>", len("<think>"))
        answer = None if close < 0 else _hstar_block_from(text, close + len("</think>"))
        if answer is not None:
            return answer, well_formed
    return _hstar_block_from(text, 0), well_formed


def _hstar_grounding_end(text: str, *, anchored: bool) -> int | None:
    """Where the answer of the first grounding layout starts (right after its ``<answer>``)."""
    position = 0
    for index, step in enumerate(_HSTAR_GROUNDING):
        found = step.match(text, position) if anchored and index == 0 else step.search(text, position)
        if found is None:
            return None
        position = found.end()
    return position


def _hstar_block_from(text: str, start: int, *, opened: bool = False) -> str | None:
    """The first ``<answer>..</answer>`` content at or after ``start`` (``opened``: the tag is behind us)."""
    if not opened:
        tag = text.find("<answer>", start)
        if tag < 0:
            return None
        start = tag + len("<answer>")
    end = text.find("</answer>", start)
    return None if end < 0 else text[start:end]


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
