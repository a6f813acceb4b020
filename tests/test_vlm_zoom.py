"""The vlm agent's true zoom: valid zoom actions toward its crop boxes, zoom views in its chat."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_task
from panoseek.agents import cropping
from panoseek.agents.registry import make_agent
from panoseek.agents.vlm import VLMAgent, VLMError, VLMPolicy, load_vlm
from panoseek.agents.zooming import zoom_toward
from panoseek.envs.agent import rotate
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.geometry import view_pixel_lonlat, view_position
from panoseek.envs.protocol import ZOOM_MIN_FOV, ZOOMS_PER_TURN
from panoseek.envs.rollout import episode_spec, play
from panoseek.envs.task import HOS, HPS

VIEW = (112, 63)  # small views keep the tiny model's vision work small
TASK = {"kind": HOS, "instruction": "Find the red clock.", "fov_deg": 100.0, "zooms_per_turn": ZOOMS_PER_TURN, "seed": 0}


@pytest.fixture(scope="module")
def tasks():
    return [make_task("hos0", HOS), make_task("hps0", HPS), make_task("hos1", HOS, instruction="Find the blue lamp.")]


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    model, processor = load_vlm(tiny_model_dir, dtype="float32")  # its own copy: cropping swaps its attention
    return VLMPolicy(model, processor, max_new_tokens=8)


def zoom_env(tasks, **options):
    return PanoramaSearchEnv(tasks, view_size=VIEW, max_turns=2, diagnostics=True, zoom=True, **options)


# --- the zoom action toward a box ------------------------------------------------------------

BOXES = [(0, 0, 32, 32), (80, 31, 112, 63), (0, 40, 10, 63), (40, 20, 70, 45), (0, 0, 112, 63), (100, 0, 112, 12)]


@pytest.mark.parametrize("pitch", [0.0, 35.0, -60.0, 90.0])
@pytest.mark.parametrize("box", BOXES)
def test_a_zoom_toward_any_box_is_valid_for_the_env_and_shows_the_box_centre(tasks, pitch, box):
    env = zoom_env(tasks)
    env.reset(seed=0, options={"task_index": 0, "start_index": 1})
    heading = env.step(rotate(0.0, pitch))[0]["heading"]  # float32, as an agent sees it
    action = zoom_toward(box, VIEW, heading, env.fov_deg)
    info = env.step(action)[4]
    assert info["valid_action"] and info["zoom"] is not None and info["turn"] == 1, info["feedback"]
    assert ZOOM_MIN_FOV <= action["fov"] < env.fov_deg
    centre = view_pixel_lonlat((box[0] + box[2]) / 2 - 0.5, (box[1] + box[3]) / 2 - 0.5, *heading, env.fov_deg, *VIEW)
    assert view_position(*centre, action["yaw"], action["pitch"], action["fov"], *VIEW) is not None


def test_a_box_inside_the_view_gets_the_zoom_that_covers_it_from_its_centre():
    box = (40, 20, 70, 45)  # 30 x 25 pixels: its height's share of the view decides the fov
    action = zoom_toward(box, VIEW, (30.0, 0.0), 100.0)
    centre = view_pixel_lonlat(54.5, 32.0, 30.0, 0.0, 100.0, *VIEW)
    np.testing.assert_allclose((action["yaw"], action["pitch"]), centre, atol=1e-9)
    share = 25 / 63
    assert action["fov"] == pytest.approx(np.degrees(2 * np.arctan(share * np.tan(np.radians(50)))))
    whole = zoom_toward((0, 0, *VIEW), VIEW, (30.0, 0.0), 100.0)
    assert (whole["yaw"], whole["pitch"]) == (30.0, 0.0) and 99.0 < whole["fov"] < 100.0


# --- the agent, on the tiny model ----------------------------------------------------------


def _play_counting(policy, envs, agents, specs):
    calls = []
    generate = policy.generate
    policy.generate = lambda chats, seed=None: calls.append(len(chats)) or generate(chats, seed=seed)
    try:
        return play(envs, agents, specs), calls
    finally:
        policy.generate = generate


@pytest.mark.parametrize("method, levels", [("rel-att", 1), pytest.param("funnel", cropping.FUNNEL_LEVELS, marks=pytest.mark.slow)])
def test_zooming_episodes_zoom_validly_and_reply_once_per_turn(policy, tasks, method, levels):
    specs = [episode_spec(tasks[0], 0, 0, run_seed=0), episode_spec(tasks[1], 1, 3, run_seed=0)]
    envs = [zoom_env(tasks) for _ in specs]
    agents = [VLMAgent(policy, crop=method, crop_layer=1, zoom=True, prompt_format="no_think") for _ in specs]
    rollouts, calls = _play_counting(policy, envs, agents, specs)
    assert calls == [len(specs)] * 2  # the untrained model never submits: 2 turns, one generate each
    for rollout, agent in zip(rollouts, agents):
        record = rollout.record
        assert record["error"] is None and record["turns"] == 2
        assert record["zooms"] == levels * 2 and [view["turn"] for view in record["zoom_views"]] == sorted([0, 1] * levels)
        assert not any("zoom" in (action["error"] or "") for action in record["actions"])
        # each zoom's view, as the environment showed it, is the closer look in the chat's turn
        shown = [turn.observation["image"] for before, turn in zip(rollout.turns, rollout.turns[1:])
                 if isinstance(before.output, dict)]
        attached = [np.asarray(crop) for turn in agent.chat.turns for crop in turn.crops]
        assert len(shown) == len(attached) == levels * 2
        for image, crop in zip(shown, attached):
            np.testing.assert_array_equal(crop, image)
        messages, images = agent.chat.messages()
        assert len(images) == 2 * (1 + levels)  # history 2: each view followed by its zoom views
        assert all(turn.reply is not None for turn in agent.chat.turns)

    single = [play([zoom_env(tasks)], [VLMAgent(policy, crop=method, crop_layer=1, zoom=True, prompt_format="no_think")],
                   [spec])[0] for spec in specs]
    outputs = lambda rollouts: [[turn.output for turn in r.turns] for r in rollouts]  # noqa: E731
    assert outputs(rollouts) == outputs(single)  # batched == one at a time (greedy)
    untimed = lambda rollouts: [{k: v for k, v in r.record.items() if k != "timings"} for r in rollouts]  # noqa: E731
    assert untimed(rollouts) == untimed(single)


def test_a_refused_zoom_is_the_turn_s_reply_and_the_next_view_zooms_again(policy):
    agent = VLMAgent(policy, crop="rel-att", crop_layer=1, zoom=True, prompt_format="no_think")
    agent.reset(TASK)
    rng = np.random.default_rng(0)
    view = {"image": rng.integers(0, 255, (63, 112, 3), dtype=np.uint8), "heading": [0.0, 0.0],
            "zoom": np.zeros(3, np.float32)}
    first = agent.act(view)
    assert first["zoom"] == 1 and len(agent.last_boxes) == 1
    second = agent.act({**view, "heading": [0.0, 0.0]})  # no zoom view came back: the zoom used the turn
    assert agent.chat.turns[0].reply == f"<answer>zoom({round(first['yaw'])},{round(first['pitch'])},{round(first['fov'])})</answer>"
    assert second["zoom"] == 1 and len(agent.chat.turns) == 2 and agent.chat.turns[1].reply is None


def test_zoom_needs_a_crop_method_and_a_run_that_allows_zooms(policy, tasks):
    with pytest.raises(VLMError, match="zoom=True needs a crop method .*crop=rel-att"):
        VLMAgent(policy, zoom=True)
    spec = episode_spec(tasks[0], 0, 0, run_seed=0)
    for strict in (False, "hstar"):
        plain = PanoramaSearchEnv(tasks, view_size=VIEW, max_turns=2, diagnostics=True)
        (rollout,) = play([plain], [VLMAgent(policy, crop="rel-att", crop_layer=1, zoom=True)], [spec], strict=strict)
        assert rollout.record["actions"] == []
        assert rollout.record["error"].startswith("reset: VLMError: zoom=True needs a run that allows the zoom action "
                                                  "(panoseek eval --zoom)")


def test_eval_style_zoom_argument(tiny_model_dir):
    agent = make_agent("vlm", model=str(tiny_model_dir), crop="rel-att", zoom="true", dtype="float32", max_new_tokens=2)
    assert agent.zoom and agent.crop.method == "rel-att"
    with pytest.raises(VLMError, match="expected a true/false value, got 'sometimes'"):
        make_agent("vlm", model=str(tiny_model_dir), crop="rel-att", zoom="sometimes", dtype="float32")
