"""Prompt text for language agents: the task explanation and the per-turn feedback.

The wording is panoseek's own; what it must convey follows the H* protocol: the task
(face the object, or face the way to walk), the direction convention, the two actions
and the reply layout of each prompt format.
"""

from __future__ import annotations

from panoseek.envs.protocol import PROMPT_FORMATS, feedback_text, format_action, format_reply
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


def task_prompt(kind: str, instruction: str, prompt_format: str = "free_think") -> str:
    """The opening message of an episode: task, conventions, actions, reply layout, instruction."""
    if kind not in _GOALS:
        raise ValueError(f"task kind must be {HOS!r} or {HPS!r}, got {kind!r}")
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt format {prompt_format!r}; expected one of {PROMPT_FORMATS}")
    example = format_reply(format_action("rotate", -45, 0), prompt_format=prompt_format, **_EXAMPLE)
    return "\n\n".join(
        [
            _GOALS[kind],
            _CONVENTION,
            _ACTIONS,
            f"{_LAYOUTS[prompt_format]}\nFor example: {example}",
            f"Instruction: {instruction}",
        ]
    )


def feedback_message(valid: bool, yaw: float, pitch: float, error: str = "", done: bool = False) -> str:
    """What the agent is told after a turn: whether the action ran, and its direction."""
    if valid:
        text = f"The action was carried out; {feedback_text(yaw, pitch)}."
    else:
        text = f"The action was not carried out ({error}); {feedback_text(yaw, pitch)}."
    return text + (" The episode is over." if done else " Decide your next action.")
