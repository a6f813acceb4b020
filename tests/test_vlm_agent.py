"""The language agent on the tiny model: loading errors, garbage replies, episodes, batching."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_task
from panoseek.agents.chat import EpisodeChat
from panoseek.agents.registry import AgentError, make_agent
from panoseek.agents.vlm import VLMAgent, VLMError, VLMPolicy, load_vlm
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.protocol import parse_action
from panoseek.envs.rollout import episode_spec, play
from panoseek.envs.task import HOS, HPS
from panoseek.envs.wrappers import TextActions

VIEW = (112, 63)  # small views keep the tiny model's vision work small


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir):
    return tiny_model_dir


@pytest.fixture(scope="module")
def policy(tiny_dir):
    model, processor = load_vlm(tiny_dir, dtype="float32")
    return VLMPolicy(model, processor, max_new_tokens=12)


@pytest.fixture(scope="module")
def tasks():
    return [make_task("hos0", HOS), make_task("hps0", HPS), make_task("hos1", HOS, instruction="Find the blue lamp.")]


def text_env(tasks, max_turns=3):
    return TextActions(PanoramaSearchEnv(tasks, view_size=VIEW, max_turns=max_turns))


def test_not_a_model_folder_is_named(tmp_path):
    with pytest.raises(VLMError, match=f"model path '{tmp_path / 'missing'}' is not a folder"):
        load_vlm(tmp_path / "missing")
    with pytest.raises(VLMError, match="is not a model folder: it has no config.json"):
        load_vlm(tmp_path)
    with pytest.raises(AgentError, match="has no config.json"):  # what `panoseek eval` reports
        make_agent("vlm", model=str(tmp_path))


def test_bad_options_are_named(tiny_dir, policy):
    with pytest.raises(VLMError, match="dtype must be one of"):
        load_vlm(tiny_dir, dtype="float8")
    with pytest.raises(VLMError, match="prompt_format must be one of"):
        VLMAgent(policy, prompt_format="chatty")
    with pytest.raises(VLMError, match="max_pixels must be at least 784"):
        VLMAgent(tiny_dir, max_pixels=10)
    with pytest.raises(VLMError, match="expected a true/false value, got 'maybe'"):
        VLMAgent(tiny_dir, sample="maybe")


@pytest.mark.slow
def test_untrained_model_garbage_is_always_handled(policy, tasks):
    """Sampled completions of the random model: every one parses to an action or an invalid one."""
    sampler = VLMPolicy(policy.model, policy.processor, sample=True, temperature=1.5, max_new_tokens=48)
    replies = []
    for round_index, prompt_format in enumerate(("free_think", "no_think", "grounding")):
        chats = []
        for index in range(16):
            chat = EpisodeChat("HOS" if index % 2 else "HPS", "Find the red clock.", prompt_format, history=1)
            chat.observe({"image": np.full((63, 112, 3), 15 * index, np.uint8), "heading": [10.0 * index, 0.0]})
            chats.append(chat)
        replies += sampler.generate(chats, seed=round_index)
    assert len(replies) == 48 and len(set(replies)) > 40  # real, varied garbage
    env = text_env(tasks, max_turns=len(replies) + 1)
    env.reset(seed=0)
    for reply in replies:
        parsed = parse_action(reply)
        assert parsed.kind in ("rotate", "submit", "invalid")
        assert parsed.valid or parsed.error
        _, reward, terminated, truncated, info = env.step(reply)
        assert info["valid_action"] == parsed.valid
        if terminated or truncated:
            env.reset(seed=0)


def test_episode_through_text_actions_runs_to_the_turn_limit(policy, tasks):
    env = text_env(tasks, max_turns=3)
    agent = VLMAgent(policy, history=2)
    observation, info = env.reset(seed=0, options={"task_index": 1, "start_index": 2})
    agent.reset({"kind": info["kind"], "instruction": str(observation["instruction"]), "seed": 0})
    turns, feedback, done = 0, "", False
    while not done:
        reply = agent.act({**observation, "turn": turns, "feedback": feedback})
        assert isinstance(reply, str) and agent.last_action == parse_action(reply)
        observation, reward, terminated, truncated, info = env.step(reply)
        feedback, turns, done = info["feedback"], turns + 1, terminated or truncated
    assert turns <= 3 and (truncated or info["submitted"] is not None)
    assert len(agent.chat.turns) == turns and all(turn.reply is not None for turn in agent.chat.turns)


def test_registered_as_vlm_with_eval_style_arguments(tiny_dir):
    agent = make_agent("vlm", model=str(tiny_dir), history=3, prompt_format="no_think", max_new_tokens=4,
                       sample="false", dtype="float32", device="cpu", max_pixels=3136)
    assert isinstance(agent, VLMAgent) and agent.history == 3 and agent.prompt_format == "no_think"
    assert agent.policy.max_new_tokens == 4 and not agent.policy.sample
    assert agent.policy.processor.image_processor.size["longest_edge"] == 3136


@pytest.mark.slow
def test_batched_and_one_at_a_time_give_the_same_greedy_replies(policy, tasks):
    """The rollout loop plays a lock-step batch with one generate call per turn (act_batch)."""
    specs = [episode_spec(task, t, s, run_seed=0) for t, task in enumerate(tasks) for s in (0, 3)]
    envs = [PanoramaSearchEnv(tasks, view_size=VIEW, max_turns=3, diagnostics=True) for _ in specs]
    calls = []
    generate = policy.generate
    policy.generate = lambda chats, seed=None: calls.append(len(chats)) or generate(chats, seed=seed)
    try:
        batched = play(envs, [VLMAgent(policy, history=2) for _ in specs], specs)
    finally:
        policy.generate = generate
    assert calls == [len(specs)] * 3  # the random model never submits: 3 turns, all 6 episodes each turn

    single = [play(envs[:1], [VLMAgent(policy, history=2)], [spec])[0] for spec in specs]
    replies = lambda rollouts: [[turn.output for turn in r.turns] for r in rollouts]  # noqa: E731
    assert replies(batched) == replies(single)
    untimed = lambda rollouts: [{k: v for k, v in r.record.items() if k != "timings"} for r in rollouts]  # noqa: E731
    assert untimed(batched) == untimed(single)
    assert all(len(r) == 3 for r in replies(single))



def test_a_failed_batch_call_leaves_the_chats_as_they_were(policy, tasks):
    """generate raising once (say, out of memory) costs that turn only: the later turns of the
    batch's episodes are answered as usual, not refused by a chat stuck on an unanswered turn."""
    specs = [episode_spec(task, t, 0, run_seed=0) for t, task in enumerate(tasks)]
    envs = [PanoramaSearchEnv(tasks, view_size=VIEW, max_turns=3, diagnostics=True) for _ in specs]
    calls = []
    generate = policy.generate

    def flaky(chats, seed=None):
        calls.append(len(chats))
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return generate(chats, seed=seed)

    policy.generate = flaky
    try:
        rollouts = play(envs, [VLMAgent(policy, history=2) for _ in specs], specs)
    finally:
        policy.generate = generate
    for rollout in rollouts:
        errors = [action["error"] or "" for action in rollout.record["actions"]]
        assert len(errors) == 3 and "out of memory" in errors[1]
        assert "observe() called twice" not in errors[2] and rollout.record["error"].startswith("act: RuntimeError: out of")
