"""Prompt text for language agents: the task explanation and the per-turn feedback.

The wording is panoseek's own; what it must convey follows the H* protocol: the task
(face the object, or face the way to walk), the direction convention, the two actions
and the reply layout of each prompt format.

Two structures. panoseek's (:func:`task_prompt`, :func:`feedback_message`): one opening
message, then a short feedback line per turn that always states the direction. H*'s
(``hstar_*``, used with the ``"hstar"`` parser): a system prompt with a worked example
episode (:func:`hstar_system_prompt`), then every turn a message that repeats the
instruction and the format block (:func:`hstar_first_message`, :func:`hstar_turn_message`),
and an invalid action told without a direction (``feedback_message(..., hstar=True)``).
``HSTAR_VIEW`` marks where the view goes in those messages, as in H*.
"""

from __future__ import annotations

from panoseek.envs.protocol import PROMPT_FORMATS, ZOOM_MIN_FOV, ZOOMS_PER_TURN, feedback_text, format_action, format_reply
from panoseek.envs.task import HOS, HPS

_GOALS = {
    HOS: (
        "You are standing inside a 360-degree scene and can only see what is in front of you. "
        "Find the object named in the instruction by turning your head, bring it under the green "
        "cross at the centre of your view, and then submit that direction."
    ),
    HPS: (
        "You are standing inside a 360-degree scene and can only see what is in front of you. "
        "Turn your head until the green cross at the centre of your view points the way you should "
        "walk to follow the instruction (a free path, not into an obstacle or a drop), and then "
        "submit that direction."
    ),
}

_CONVENTION = (
    "Directions are given in whole degrees as (yaw, pitch). Yaw is the horizontal heading, from 0 "
    "to 359; a larger yaw is further to the right. Pitch is the vertical angle, from -90 (straight "
    "down) to 90 (straight up); 0 is level. Each episode starts at pitch 0 and the environment "
    "reports your direction after every action."
)

_ACTIONS = (
    "Each turn you take exactly one action:\n"
    "- rotate(dyaw,dpitch): turn by dyaw degrees (positive turns right, negative left) and by "
    "dpitch degrees (positive looks up, negative looks down), relative to where you look now.\n"
    "- submit(yaw,pitch): give your final direction as absolute angles; this ends the episode.\n"
    "You have a limited number of turns; an episode that never submits fails."
)

_ZOOM_ACTION = (
    "- zoom(yaw,pitch,fov): take a closer look without turning: a view toward the absolute direction "
    "(yaw, pitch) with a narrower horizontal field of view of fov degrees (at least {min_fov:g}, below "
    "the {view_fov:g} of your view), at full resolution. It must lie inside your current view. It does "
    "not use a turn; at most {cap} zooms between two turns."
)

_LAYOUTS = {
    "free_think": "Reason briefly first, then give the action: <think>your reasoning</think><answer>action</answer>",
    "no_think": "Give only the action: <answer>action</answer>",
    "grounding": (
        "First describe where you see the target (or what you see, if it is not in view), then "
        "reason, then give the action: <think><observation>what you see</observation>"
        "<reasoning>your reasoning</reasoning></think><answer>action</answer>"
    ),
}

_EXAMPLE = {
    "think": "A shelf is on the left edge of the view; the target is probably on it.",
    "observation": "A shelf is on the left edge of the view; no target is visible yet.",
}


def _check(prompt_format: str, kind: str = HOS) -> None:
    """One clear error for an unknown task kind or prompt format."""
    if kind not in _GOALS:
        raise ValueError(f"task kind must be {HOS!r} or {HPS!r}, got {kind!r}")
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt format {prompt_format!r}; expected one of {PROMPT_FORMATS}")


def task_prompt(kind: str, instruction: str, prompt_format: str = "free_think", *, zoom_fov: float | None = None) -> str:
    """The opening message of an episode: task, conventions, actions, reply layout, instruction.

    ``zoom_fov``: the view's FOV when the run allows zooms (the zoom action is then
    explained); ``None`` for the plain protocol."""
    _check(prompt_format, kind)
    example = format_reply(format_action("rotate", -45, 0), prompt_format=prompt_format, **_EXAMPLE)
    actions = _ACTIONS
    if zoom_fov is not None:
        zoom = _ZOOM_ACTION.format(min_fov=ZOOM_MIN_FOV, view_fov=zoom_fov, cap=ZOOMS_PER_TURN)
        actions = actions.replace("\nYou have a limited", f"\n{zoom}\nYou have a limited")
    return "\n\n".join(
        [
            _GOALS[kind],
            _CONVENTION,
            actions,
            f"{_LAYOUTS[prompt_format]}\nFor example: {example}",
            f"Instruction: {instruction}",
        ]
    )


def compact_prompt(kind: str, instruction: str, prompt_format: str = "free_think") -> str:
    """A one-line opening for models trained on panoseek's own data (the ``compact`` chat).

    A model trained from scratch learns the protocol from its training episodes, not from
    a page of rules, and the full prompt is most of a row's tokens (about 1,100 of 1,400
    at 112x63), which is most of a CPU training step. Kind and reply layout stay explicit.
    """
    _check(prompt_format, kind)
    task = "Object search" if kind == HOS else "Path search"
    return f"{task} ({prompt_format}). Instruction: {instruction}"


def feedback_message(
    valid: bool, yaw: float, pitch: float, error: str = "", done: bool = False, *, hstar: bool = False
) -> str:
    """What the agent is told after a turn: whether the action ran, and its direction.

    ``hstar``: an invalid action is told as H* tells it, with neither reason nor direction.
    """
    if valid:
        text = f"The action was carried out; {feedback_text(yaw, pitch)}."
    elif hstar:
        text = "The action was not carried out."
    else:
        text = f"The action was not carried out ({error}); {feedback_text(yaw, pitch)}."
    return text + (" The episode is over." if done else " Decide your next action.")


def zoom_feedback(yaw: float, pitch: float, fov: float, heading_yaw: float, heading_pitch: float, left: int) -> str:
    """What the agent is told after a zoom: which view it now sees, that no turn was used."""
    return (
        f"The zoom was carried out: this view looks toward (yaw,pitch) ({round(yaw)},{round(pitch)}) with a "
        f"field of view of {fov:g} degrees. It used no turn ({left} more zoom{'' if left == 1 else 's'} before your "
        f"next turn); {feedback_text(heading_yaw, heading_pitch)}. Decide your next action."
    )


# ------------------------------------------------------------ H*-structured prompts

HSTAR_VIEW = "<image>"  # where the current view goes in an H*-structured message

_HSTAR_ROLES = {
    HOS: (
        "You are a robot that searches for objects on instruction. Turn the camera until the object named "
        "in the instruction sits in the middle of the view, under the green cross that marks the camera "
        "centre, and then submit."
    ),
    HPS: (
        "You are a robot that finds its way on instruction. Turn the camera until the green cross that marks "
        "the camera centre points the way you should walk to reach the place named in the instruction "
        "(never into an obstacle or over a drop), and then submit."
    ),
}

_HSTAR_ACTIONS = (
    "The actions are rotate(yaw:int,pitch:int) and submit(yaw:int,pitch:int).\n"
    "rotate(yaw:int,pitch:int) turns the camera relative to where it points now: a yaw above 0 turns right, "
    "below 0 left; a pitch above 0 looks up, below 0 down.\n"
    "submit(yaw:int,pitch:int) ends the task with an absolute direction: give the yaw and pitch the "
    "environment reported for the view you choose.\n"
    "Take one action per turn. Each observation repeats the instruction; look at the picture closely "
    "before you act."
)

_HSTAR_LAYOUTS = {
    "free_think": ("Think first, then answer.", "<think>...</think><answer>...</answer>"),
    "no_think": ("Answer with the action only.", "<answer>...</answer>"),
    "grounding": (
        "First describe what you observe, then reason, then answer.",
        "<think><observation>...</observation><reasoning>...</reasoning></think><answer>...</answer>",
    ),
}

# A worked episode (instruction "Find the red kettle."): (what the agent sees, why, action).
_HSTAR_EXAMPLE = (
    ("A sofa and a window; no kitchen in sight.", "Kitchens are often beside the living room; turn right.",
     ("rotate", 90, 0)),
    ("A kitchen counter, with a red kettle a little right of the cross and below it.",
     "Turn a little right and look a little down to centre the kettle.", ("rotate", 20, -10)),
    ("The red kettle is under the cross.", "The kettle is centred; submit this direction.", ("submit", 110, -10)),
)


def _hstar_example_reply(step: int, prompt_format: str) -> str:
    """The agent's reply in round ``step`` of the worked example, in the layout of ``prompt_format``."""
    observation, reasoning, action = _HSTAR_EXAMPLE[step]
    think = reasoning if prompt_format == "grounding" else f"{observation} {reasoning}"
    return format_reply(format_action(*action), think=think, observation=observation, prompt_format=prompt_format)


def _hstar_format_block(prompt_format: str, with_example: bool) -> str:
    """The reply-layout block H* repeats every turn (with an example reply in the system prompt)."""
    description, layout = _HSTAR_LAYOUTS[prompt_format]
    block = f"Take 1 action per turn. {description}\nReply in this layout:\n{layout}"
    return block + (f"\nFor example: {_hstar_example_reply(0, prompt_format)}" if with_example else "")


def hstar_system_prompt(kind: str, prompt_format: str = "free_think") -> str:
    """H*'s system prompt, in panoseek's words: role, actions, a worked 4-round episode, the format block."""
    _check(prompt_format, kind)
    rounds = ["Example (instruction: Find the red kettle.):"]
    yaw = pitch = 0
    for step, (_, _, (_, dyaw, dpitch)) in enumerate(_HSTAR_EXAMPLE):
        rounds.append(f"Round {step + 1}:")
        if step:
            rounds.append(f"Feedback: {feedback_message(True, yaw, pitch)}")
        rounds += [f"view_{step + 1}", _hstar_example_reply(step, prompt_format)]
        yaw, pitch = yaw + dyaw, pitch + dpitch
    rounds += [f"Round {len(_HSTAR_EXAMPLE) + 1}:", "Feedback: the task is solved."]
    example = "\n".join(rounds)
    return "\n\n".join([_HSTAR_ROLES[kind], _HSTAR_ACTIONS, example, _hstar_format_block(prompt_format, True)])


def hstar_first_message(instruction: str, prompt_format: str = "free_think") -> str:
    """The first user message of an H*-structured episode: the view, the instruction, the format block."""
    _check(prompt_format)
    return (f"[first view]\n{HSTAR_VIEW}\nInstruction: {instruction}\nDecide your next action.\n"
            f"{_hstar_format_block(prompt_format, False)}")


def hstar_turn_message(instruction: str, prompt_format: str, action: str, feedback: str, done: bool) -> str:
    """Every later user message: the action read from the reply (``action``, "" for none), the
    feedback, then (unless ``done``) the new view and the instruction; always the format block."""
    _check(prompt_format)
    text = f"The action read from your reply: {action or 'none'}.\nFeedback: {feedback}\n"
    if not done:
        text += f"[new view]\n{HSTAR_VIEW}\nInstruction: {instruction}\n"
    return text + _hstar_format_block(prompt_format, False)
