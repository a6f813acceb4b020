"""The PPO policy: shapes with and without the codebook, the codebook's probabilities, checkpoints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from panoseek.agents.codebook import CodebookBottleneck
from panoseek.agents.policy import (
    PolicyCheckpointError, PolicyConfig, SearchPolicy, WordTokenizer, load_policy, policy_checkpoint,
)
from panoseek.agents.ppo_agent import PPOAgent, rotation_actions

NAMES, _ = rotation_actions(30.0, 90.0)
INSTRUCTIONS = ["Find the red clock.", "Go to gate 12.", "Which way is the car park?"]


def _config(**overrides) -> PolicyConfig:
    tokenizer = WordTokenizer.from_texts(INSTRUCTIONS)
    return PolicyConfig(vocabulary=tokenizer.vocabulary, action_names=NAMES, **{"view_size": (64, 36), **overrides})


def _inputs(policy: SearchPolicy, batch: int, size: tuple[int, int] = (64, 36)) -> dict:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, size[1], size[0], 3), dtype=np.uint8)
    return policy.inputs(images, [INSTRUCTIONS[i % 3] for i in range(batch)], np.zeros(batch), np.arange(batch),
                         10, np.full(batch, policy.no_action))


def test_tokenizer_is_deterministic_and_splits_numbers_into_digits():
    a, b = WordTokenizer.from_texts(INSTRUCTIONS), WordTokenizer.from_texts(reversed(INSTRUCTIONS))
    assert a.vocabulary == b.vocabulary and a.vocabulary[:2] == ("<pad>", "<unk>")
    assert a.encode("Go to gate 21") == (a.vocabulary.index("go"), a.vocabulary.index("to"),
                                         a.vocabulary.index("gate"), a.vocabulary.index("2"), a.vocabulary.index("1"))
    assert a.encode("zebra") == (1,) and a.batch(["go", "find the red"]).shape == (2, 3)


@pytest.mark.parametrize("codebook,cnn,attention", [(False, "nature", False), (True, "nature", False),
                                                    (False, "fine", False), (True, "nature", True),
                                                    (False, "fine", True)])
def test_forward_shapes_over_sequences(codebook, cnn, attention):
    policy = SearchPolicy(_config(codebook=codebook, cnn=cnn, spatial_attention=attention))
    steps, batch = 3, 4
    x = _inputs(policy, steps * batch)
    state = policy.initial_state(batch)
    starts = torch.zeros(steps * batch)
    starts[:batch] = 1
    action, logprob, entropy, value, next_state = policy.get_action_and_value(x, state, starts)
    assert action.shape == logprob.shape == entropy.shape == value.shape == (steps * batch,)
    assert next_state.shape == (1, batch, policy.config.hidden_size)
    assert int(action.max()) < len(NAMES)
    assert policy.get_value(x, state, starts).shape == (steps * batch,)
    assert (policy.codebook is not None) == codebook


def test_spatial_attention_reads_where_the_instruction_matches_the_map():
    """One cell that matches the instruction's query dominates: the attention's mean position is that
    cell's centre (x right, y up, in [-1, 1]), its score is the best score, its features are that cell's."""
    torch.manual_seed(0)
    policy = SearchPolicy(_config(spatial_attention=True, cnn="fine"))
    channels, cells_y, cells_x = policy.cnn(torch.zeros(1, 3, 36, 64)).shape[1:]
    words = torch.randn(2, policy.config.word_dim)
    query = policy.query(words).detach()
    maps = torch.zeros(2, channels, cells_y, cells_x)
    maps[0, :, 0, cells_x - 1] = 40 * query[0]  # top right
    maps[1, :, cells_y - 1, 0] = 40 * query[1]  # bottom left
    with torch.no_grad():
        attended, best, position = policy._attend(maps, words)
    torch.testing.assert_close(position, torch.tensor([[1.0, 1.0], [-1.0, -1.0]]), atol=1e-3, rtol=0)
    torch.testing.assert_close(attended[0], maps[0, :, 0, cells_x - 1], atol=1e-2, rtol=1e-3)
    scores = torch.einsum("bcn,bc->bn", maps.flatten(2), query) / channels**0.5
    torch.testing.assert_close(best[:, 0], scores.max(dim=1).values)


def test_an_unknown_cnn_is_refused_by_name():
    with pytest.raises(ValueError, match="cnn must be one of"):
        SearchPolicy(_config(cnn="resnet"))


def test_an_episode_start_resets_the_memory():
    policy = SearchPolicy(_config()).eval()
    x = _inputs(policy, 2)
    fresh = policy.memory(x, policy.initial_state(2), torch.ones(2))[0]
    reset = policy.memory(x, torch.randn(1, 2, policy.config.hidden_size), torch.ones(2))[0]
    torch.testing.assert_close(fresh, reset)


def test_a_view_too_small_for_the_cnn_is_refused():
    with pytest.raises(ValueError, match="view_size"):
        SearchPolicy(_config(view_size=(32, 18)))


def test_codebook_probabilities_sum_to_one_and_dropout_only_trains():
    bottleneck = CodebookBottleneck(32, size=256, code_dim=10, dropout=0.1)
    embeds = torch.randn(5, 32)
    probabilities = bottleneck.probabilities(embeds)
    assert probabilities.shape == (5, 256)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(5))
    assert bottleneck(embeds).shape == (5, 32)
    bottleneck.eval()
    torch.testing.assert_close(bottleneck(embeds), bottleneck(embeds))


def test_checkpoint_round_trip_and_resized_views(tmp_path):
    policy = SearchPolicy(_config(codebook=True)).eval()
    path = tmp_path / "policy.pt"
    torch.save(policy_checkpoint(policy), path)
    loaded = load_policy(path, {"codebook": True, "view_size": [64, 36]})
    x = _inputs(policy, 3)
    torch.testing.assert_close(loaded.memory(x, loaded.initial_state(3), torch.ones(3))[0],
                               policy.memory(x, policy.initial_state(3), torch.ones(3))[0])
    assert loaded.inputs(np.zeros((1, 252, 448, 3), np.uint8), ["go"], [0.0], [0], 10, [7])["image"].shape == (1, 36, 64, 3)


def test_incompatible_checkpoints_are_refused_naming_the_field(tmp_path):
    policy = SearchPolicy(_config())
    good = policy_checkpoint(policy)

    def save(name: str, data) -> str:
        torch.save(data, tmp_path / name)
        return str(tmp_path / name)

    with pytest.raises(PolicyCheckpointError, match="'codebook' is False, expected True"):
        PPOAgent(save("plain.pt", good), codebook=True)
    with pytest.raises(PolicyCheckpointError, match="'view_size'"):
        PPOAgent(save("plain2.pt", good), view_size=[128, 72])
    flipped = {**good, "config": {**good["config"], "codebook": True}}
    with pytest.raises(PolicyCheckpointError, match="config field 'codebook' is True but the weights lack"):
        PPOAgent(save("flipped.pt", flipped))
    resized = {**good, "config": {**good["config"], "view_size": (128, 72)}}
    with pytest.raises(PolicyCheckpointError, match="config field 'view_size'"):
        PPOAgent(save("resized.pt", resized))
    other_actions = {**good, "config": {**good["config"], "big_step_deg": None}}
    with pytest.raises(PolicyCheckpointError, match="'action_names'"):
        PPOAgent(save("actions.pt", other_actions))
    attending = {**good, "config": {**good["config"], "spatial_attention": True}}
    with pytest.raises(PolicyCheckpointError, match="config field 'spatial_attention'"):
        PPOAgent(save("attending.pt", attending))
    fine = {**good, "config": {**good["config"], "cnn": "fine"}}
    with pytest.raises(PolicyCheckpointError, match="config field 'cnn'"):
        PPOAgent(save("fine.pt", fine))
    with pytest.raises(PolicyCheckpointError, match="field 'format'"):
        PPOAgent(save("other.pt", {"weights": torch.zeros(2)}))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PolicyCheckpointError, match="not a readable checkpoint"):
        PPOAgent(str(tmp_path / "junk.pt"))
    with pytest.raises(PolicyCheckpointError, match="not a file"):
        PPOAgent(str(tmp_path / "missing.pt"))


def test_agent_submits_the_current_heading_and_turns_by_the_table(tmp_path):
    policy = SearchPolicy(_config())
    with torch.no_grad():  # force the actor's choice through its bias
        policy.actor.weight.zero_()
        policy.actor.bias.copy_(torch.tensor([5.0] + [0.0] * (len(NAMES) - 1)))
    path = tmp_path / "submit.pt"
    torch.save(policy_checkpoint(policy), path)
    agent = PPOAgent(str(path))
    agent.reset({"instruction": "Go to gate 12.", "max_turns": 10, "seed": 3})
    observation = {"image": np.zeros((36, 64, 3), np.uint8), "instruction": "Go to gate 12.",
                   "heading": np.array([123.0, -30.0], np.float32), "turn": 0, "feedback": ""}
    assert agent.act(observation) == {"submit": 1, "yaw": 123.0, "pitch": -30.0}
    with torch.no_grad():
        policy.actor.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0]))
    torch.save(policy_checkpoint(policy), tmp_path / "turn.pt")
    agent = PPOAgent(str(tmp_path / "turn.pt"))
    agent.reset({"max_turns": 10})
    assert agent.act(observation) == {"submit": 0, "yaw": 90.0, "pitch": 0.0}  # big_right
    assert dataclasses.asdict(agent.policy.config)["action_names"] == NAMES


def test_last_turn_submits_leaves_submit_as_the_only_action_on_the_last_turn():
    submit = NAMES.index("submit")
    policy = SearchPolicy(_config(last_turn_submits=True))
    x = _inputs(policy, 12)  # turns 0..11 of a 10-turn budget: turns 9, 10 and 11 are last turns
    starts = torch.ones(12)
    assert x["last_turn"].tolist() == [turn >= 9 for turn in range(12)]
    for _ in range(5):
        action, logprob, entropy, _, _ = policy.get_action_and_value(x, policy.initial_state(12), starts)
        assert (action[9:] == submit).all() and torch.allclose(logprob[9:], torch.zeros(3), atol=1e-6)
        assert (entropy[9:].abs() < 1e-6).all() and (entropy[:9] > 1.0).all()
    free = SearchPolicy(_config())
    free.load_state_dict(policy.state_dict())
    hidden, _ = free.memory(x, free.initial_state(12), starts)
    assert torch.equal(free.action_logits(hidden, x["last_turn"]), free.actor(hidden))  # off: nothing masked


def test_target_loss_labels_in_view_and_offsets_and_ignores_offsets_out_of_view():
    policy = SearchPolicy(_config(target_head=True)).requires_grad_(False)
    hidden = torch.zeros(4, policy.config.hidden_size)
    half_fov = (50.0, 30.0)
    with torch.no_grad():
        policy.target.weight.zero_()
        policy.target.bias.copy_(torch.tensor([30.0, 0.2, -0.5]))  # "in view, at (10, -15) degrees"
    in_view = torch.tensor([[10.0, -15.0]] * 4)
    assert float(policy.target_loss(hidden, in_view, half_fov)) < 1e-6
    shifted = torch.tensor([[35.0, -15.0]] * 4)  # in view, but half a field of view further right
    assert float(policy.target_loss(hidden, shifted, half_fov)) == pytest.approx(0.25, abs=1e-5)
    with torch.no_grad():
        policy.target.bias.copy_(torch.tensor([-30.0, 0.9, 0.9]))  # "not in view": the offsets do not count
    out_of_view = torch.tensor([[120.0, 0.0], [-60.0, 0.0], [0.0, 45.0], [180.0, -80.0]])
    assert float(policy.target_loss(hidden, out_of_view, half_fov)) < 1e-6
    with pytest.raises(ValueError, match="no target head"):
        SearchPolicy(_config()).target_loss(hidden, in_view, half_fov)


def test_a_checkpoint_with_a_target_head_round_trips(tmp_path):
    policy = SearchPolicy(_config(target_head=True, last_turn_submits=True))
    torch.save(policy_checkpoint(policy), tmp_path / "policy.pt")
    loaded = load_policy(tmp_path / "policy.pt")
    assert loaded.config == policy.config and loaded.target is not None
    data = policy_checkpoint(policy)
    data["config"]["target_head"] = False
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(PolicyCheckpointError, match="target_head"):
        load_policy(tmp_path / "bad.pt")


def test_the_agent_never_reads_the_target_head_and_submits_on_its_last_turn(tmp_path):
    torch.manual_seed(0)
    policy = SearchPolicy(_config(target_head=True, last_turn_submits=True))
    with torch.no_grad():  # random actor weights, so the logits depend on what the GRU carries
        policy.actor.weight.normal_(0.0, 1.0)
    torch.save(policy_checkpoint(policy), tmp_path / "a.pt")
    with torch.no_grad():
        policy.target.weight.normal_()
        policy.target.bias.normal_()
    torch.save(policy_checkpoint(policy), tmp_path / "b.pt")
    plays, logits = [], []
    for name in ("a.pt", "b.pt"):
        agent = PPOAgent(str(tmp_path / name), greedy=False)
        agent.reset({"instruction": "Find the red clock.", "max_turns": 6, "seed": 7})
        rng = np.random.default_rng(1)  # the same views for both checkpoints
        actions = []
        for turn in range(6):
            observation = {"image": rng.integers(0, 256, (36, 64, 3), dtype=np.uint8), "turn": turn,
                           "instruction": "Find the red clock.", "heading": np.array([0.0, 0.0], np.float32)}
            actions.append(agent.act(observation))
        plays.append(actions)
        x = _inputs(agent.policy, 4)
        hidden, _ = agent.policy.memory(x, agent.policy.initial_state(4), torch.ones(4))
        logits.append(agent.policy.action_logits(hidden, x["last_turn"]))
    assert plays[0] == plays[1]  # other target-head weights, the same sampled actions
    assert torch.equal(logits[0], logits[1]) and logits[0].std() > 0
    assert plays[0][-1]["submit"] == 1 and any(action["submit"] == 0 for action in plays[0][:-1])
