"""The H* text protocol: strict and lenient parsing, well-formedness, feedback and prompts."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panoseek.envs.prompts import feedback_message, task_prompt
from panoseek.envs.protocol import (
    ANGLE_LIMIT,
    ActionProtocol,
    check_action,
    parse_structured,
    PROMPT_FORMATS,
    ParsedAction,
    feedback_text,
    format_action,
    format_reply,
    parse_action,
)


def test_strict_h_star_reply_parses_and_is_well_formed():
    action = parse_action("<think>The clock is left.</think><answer>rotate(-45,0)</answer>", strict=True)
    assert action == ParsedAction("rotate", -45.0, 0.0, well_formed=True, error="")
    submit = parse_action("  <think>\nok\n</think>\n<answer>submit(285, -5)</answer>\n", strict=True)
    assert (submit.kind, submit.yaw, submit.pitch, submit.well_formed) == ("submit", 285.0, -5.0, True)


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("<answer>rotate(30,5)</answer>", "think"),  # missing <think>
        ("<think>x</think><answer>rotate(30.5,5)</answer>", "int"),  # float
        ("<think>x</think><answer>Rotate(30,5)</answer>", "int"),  # case
        ("<THINK>x</THINK><ANSWER>rotate(30,5)</ANSWER>", "</answer>"),  # tag case
        ("<think>x</think><answer>rotate (30,5)</answer>", "int"),  # space before bracket
        ("<think>x</think><answer>rotate(30,5)", "</answer>"),  # unclosed answer
        ("<think>x</think><answer>rotate(30,5)</answer> thanks", "</answer>"),  # trailing text
        ("<think><think>x</think></think><answer>rotate(30,5)</answer>", "nested"),
        ("<think>x</think><answer><answer>rotate(30,5)</answer></answer>", "nested"),
    ],
)
def test_strict_mode_refuses_what_h_star_refuses(reply, reason):
    action = parse_action(reply, strict=True)
    assert action.kind == "invalid" and not action.well_formed
    assert reason in action.error


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("<answer>rotate(30,5)</answer>", ("rotate", 30.0, 5.0)),
        ("<ANSWER> Rotate ( 30.5 , -2 ) </Answer>", ("rotate", 30.5, -2.0)),
        ("<think>x</think><answer>SUBMIT(12.25,-3.5).</answer>", ("submit", 12.25, -3.5)),
        ("I will turn.\n<answer>rotate(-90, 0)", ("rotate", -90.0, 0.0)),  # generation stopped at </answer>
        ("<answer>rotate(1,1)</answer><answer>rotate(+2e1,.5)</answer>", ("rotate", 20.0, 0.5)),  # last answer counts
    ],
)
def test_lenient_mode_accepts_floats_spaces_case_and_missing_think(reply, expected):
    action = parse_action(reply)
    assert (action.kind, action.yaw, action.pitch) == expected
    assert not action.well_formed, "only strict-format replies earn the format reward"
    assert parse_action(reply, strict=True).kind == "invalid"


def test_well_formed_follows_the_prompt_format():
    free = "<think>a</think><answer>rotate(10,0)</answer>"
    bare = "<answer>rotate(10,0)</answer>"
    grounded = "<think><observation>a shelf</observation> <reasoning>turn</reasoning></think><answer>rotate(10,0)</answer>"
    assert parse_action(free).well_formed and not parse_action(free, prompt_format="no_think").well_formed
    assert parse_action(bare, prompt_format="no_think").well_formed and not parse_action(bare).well_formed
    assert parse_action(grounded, prompt_format="grounding").well_formed
    assert not parse_action(free, prompt_format="grounding").well_formed
    assert parse_action(free, prompt_format="grounding").kind == "rotate"  # still a valid action leniently
    assert parse_action(free, prompt_format="nonsense").error.startswith("unknown prompt format")


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("rotate(1e400,0)", "finite"),
        ("rotate(0,-1e400)", "finite"),
        (f"rotate({int(ANGLE_LIMIT) + 1},0)", "finite"),
        ("rotate(" + "9" * 5000 + ",0)", "finite"),  # longer than Python's int() digit limit
        ("rotate(nan,0)", "not rotate"),
        ("rotate(inf,0)", "not rotate"),
        ("rotate(３０,0)", "not rotate"),  # full-width digits
        ("rotate(٣٠,0)", "not rotate"),  # Arabic-Indic digits
        ("rotate(30)", "not rotate"),
        ("rotate(1,2,3)", "not rotate"),
        ("zoom(1,2)", "not rotate"),
        ("", "not rotate"),
        ("submit(10,95)", "outside [-90, 90]"),
    ],
)
def test_bad_angles_and_actions_are_invalid_with_a_reason(answer, reason):
    for strict in (False, True):
        action = parse_action(f"<think>t</think><answer>{answer}</answer>", strict=strict)
        assert action.kind == "invalid" and not action.valid
        # strict mode refuses non-integers such as 1e400 at the syntax level already
        assert reason in action.error or (strict and "not rotate(int,int)" in action.error), (strict, action.error)
        assert (action.yaw, action.pitch) == (0.0, 0.0)


@pytest.mark.parametrize("value", [None, 42, b"<answer>rotate(1,1)</answer>", ["rotate(1,1)"]])
def test_non_string_replies_are_invalid(value):
    action = parse_action(value)
    assert action.kind == "invalid" and "string" in action.error


def test_megabyte_of_hostile_text_is_invalid():
    """Inputs that make a backtracking regex quadratic must stay linear and invalid."""
    hostile = [
        "<think>" + "</think><answer>" * 70_000,
        "<answer>" * 100_000 + "</answer>" * 100_000,
        "<answer>rotate(" + "1" * 1_000_000 + ",0)</answer>",
        " " * 1_000_000,
        "x" * 1_000_000,
    ]
    for text in hostile:
        for strict in (False, True):
            action = parse_action(text, strict=strict)
            assert action.kind == "invalid" and action.error
            assert len(action.error) < 300, "errors quote a short excerpt, not the whole reply"


def _parse_seconds(text: str) -> float:
    """Best of five timings of parsing ``text`` leniently."""
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        parse_action(text)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("make", [lambda n: "<" + " " * n + "x", lambda n: "<answer>rotate(1,1)" + " " * n + "x",
                                  lambda n: "<answer>rotate(1,1)" + " " * n + ". x</answer>"])
def test_parse_time_grows_linearly_with_the_text(make):
    """8x the text must cost far less than 64x the time (the quadratic regexes did ~64x).

    A ratio of two timings in the same process, never a time: machines are noisy.
    """
    small, large = _parse_seconds(make(4_000)), _parse_seconds(make(32_000))
    assert large / max(small, 1e-6) < 24, (small, large)


def test_one_validator_for_text_and_structured_actions():
    for kind, yaw, pitch in [("rotate", 361.0, 0.0), ("rotate", 0.0, math.nan), ("submit", 10.0, 91.0), ("zoom", 0.0, 0.0)]:
        direct = check_action(kind, yaw, pitch)
        assert not direct.valid
        if kind != "zoom":
            text = parse_action(f"<answer>{kind}({yaw:g},{pitch:g})</answer>")
            structured = parse_structured({"submit": int(kind == "submit"), "yaw": yaw, "pitch": pitch})
            assert not text.valid and not structured.valid
    assert check_action("rotate", 360.0, -360.0).valid and check_action("submit", -360.0, 90.0).valid
    assert parse_action("<answer>rotate(360,-360)</answer>").valid
    assert parse_structured({"submit": 0, "yaw": 360.0, "pitch": -360.0}).valid


def test_action_protocol_reads_any_output_in_its_layout_and_never_raises():
    reply = "<answer>submit(90,0)</answer>"
    assert ActionProtocol("no_think").parse(reply).well_formed
    assert not ActionProtocol("free_think").parse(reply).well_formed and ActionProtocol("free_think").parse(reply).valid
    assert not ActionProtocol("free_think", strict=True).parse(reply).valid
    assert ActionProtocol().parse({"submit": 1, "yaw": 90, "pitch": 0}).well_formed

    class Hostile(dict):
        def __iter__(self):
            raise RuntimeError("no keys")

    assert "unreadable" in ActionProtocol().parse(Hostile()).error
    assert "string or a dict" in ActionProtocol().parse(3.5).error
    with pytest.raises(ValueError, match="prompt format"):
        ActionProtocol("chatty")


_PIECES = st.sampled_from(
    ["<think>", "</think>", "<answer>", "</answer>", "<ANSWER>", "rotate", "submit", "(", ")", ",", " ",
     "1e400", "-1e400", "nan", "inf", "NaN", "9" * 400, "３", "٣", "\x00", "\u202e", "0", "-5", "3.5", "."]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_PIECES, max_size=30).map("".join)), st.booleans())
def test_parse_never_raises_and_valid_actions_are_sane(text, strict):
    action = parse_action(text, strict=strict)
    assert action.kind in ("rotate", "submit", "invalid")
    if action.kind == "invalid":
        assert action.error and not action.well_formed
    else:
        assert math.isfinite(action.yaw) and math.isfinite(action.pitch)
        assert abs(action.yaw) <= ANGLE_LIMIT and abs(action.pitch) <= ANGLE_LIMIT
        assert action.error == ""
    if strict and action.valid:
        assert action.well_formed


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["rotate", "submit"]),
    st.integers(-360, 360),
    st.integers(-90, 90),
    st.sampled_from(PROMPT_FORMATS),
    st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=50),
)
def test_format_reply_round_trips_through_strict_parsing(kind, yaw, pitch, prompt_format, thought):
    reply = format_reply(format_action(kind, yaw, pitch), think=thought, observation=thought, prompt_format=prompt_format)
    action = parse_action(reply, strict=True, prompt_format=prompt_format)
    assert action == ParsedAction(kind, float(yaw), float(pitch), well_formed=True)


def test_format_action_rounds_to_integers_and_refuses_bad_input():
    assert format_action("rotate", -44.6, 0.2) == "rotate(-45,0)"
    with pytest.raises(ValueError, match="kind"):
        format_action("zoom", 1, 1)
    with pytest.raises(ValueError, match="finite"):
        format_action("submit", math.nan, 0)
    with pytest.raises(ValueError, match="prompt format"):
        format_reply("rotate(1,1)", prompt_format="json")


def test_feedback_text_prints_integers_like_h_star():
    assert feedback_text(315.0, 0.0) == "your current direction (yaw,pitch) is (315,0)"
    assert feedback_text(359.7, -4.6) == "your current direction (yaw,pitch) is (0,-5)"
    assert feedback_text(-45.0, 90.0) == "your current direction (yaw,pitch) is (315,90)"


def test_feedback_message_says_whether_the_action_ran():
    ok = feedback_message(True, 285.0, -5.0)
    assert "(285,-5)" in ok and "not" not in ok
    bad = feedback_message(False, 10.0, 0.0, error="reply has no <answer> tag", done=True)
    assert "not carried out" in bad and "no <answer> tag" in bad and "(10,0)" in bad and "over" in bad


@pytest.mark.parametrize("prompt_format", PROMPT_FORMATS)
def test_task_prompt_explains_task_convention_actions_and_layout(prompt_format):
    hos = task_prompt("HOS", "Find the red clock.", prompt_format)
    hps = task_prompt("HPS", "Go to gate 12.", prompt_format)
    for prompt in (hos, hps):
        assert "rotate(dyaw,dpitch)" in prompt and "submit(yaw,pitch)" in prompt
        assert "yaw" in prompt.lower() and "pitch" in prompt.lower() and "green cross" in prompt
        assert "<answer>" in prompt
    assert "Find the red clock." in hos and "object" in hos
    assert "Go to gate 12." in hps and "walk" in hps
    if prompt_format == "grounding":
        assert "<observation>" in hos and "where you see the target" in hos
    if prompt_format == "no_think":
        assert "<think>" not in hos


def test_task_prompt_example_is_itself_a_well_formed_reply():
    for prompt_format in PROMPT_FORMATS:
        prompt = task_prompt("HOS", "Find the clock.", prompt_format)
        example = prompt.split("For example: ", 1)[1].split("\n", 1)[0]
        assert parse_action(example, strict=True, prompt_format=prompt_format).well_formed


def test_task_prompt_refuses_unknown_kind_and_format():
    with pytest.raises(ValueError, match="kind"):
        task_prompt("XYZ", "Find it.")
    with pytest.raises(ValueError, match="prompt format"):
        task_prompt("HOS", "Find it.", "json")
