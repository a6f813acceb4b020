"""Expert data on disk: rows rendered by the agent's own chat builder, resumable builds,
the ShareGPT export, and one clear error for each kind of damaged row."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from panoseek.agents.vlm import VLMAgent
from panoseek.cli import main
from panoseek.envs.eval.runner import make_env
from panoseek.envs.rollout import EpisodeSettings, play
from panoseek.training.dataset import DatasetError, load_sft_dataset, read_rows
from panoseek.training.expert_data import EPISODES_FILE, ExpertDataError, build_expert_data, plan
from panoseek.training.sharegpt import export_sharegpt
from scripted_policy import ScriptedPolicy

VIEW = (112, 63)


@pytest.fixture(scope="module")
def val():
    from panoseek.scenes import load_suite

    return load_suite("synth:val")


@pytest.fixture(scope="module")
def data_dir(val, tmp_path_factory):
    out = tmp_path_factory.mktemp("experts") / "data"
    build_expert_data(val, out, limit=6, view_size=VIEW, history=2, progress=False)
    return out



def test_rows_are_the_chat_the_vlm_agent_sees(val, data_dir):
    rows = read_rows(data_dir)
    records = [json.loads(line) for line in (data_dir / EPISODES_FILE).read_text().splitlines()]
    assert records and all(record["success"] for record in records)
    specs = {spec.episode_id: spec for spec in plan(val, 0, 6)}
    for record in records[:3]:
        episode_rows = [row for row in rows if row["id"].startswith(record["episode_id"] + "/")]
        replies = [row["messages"][-1]["content"][0]["text"] for row in episode_rows]
        policy = ScriptedPolicy(replies)
        env = make_env(val, EpisodeSettings(view_size=VIEW))
        [rollout] = play([env], [VLMAgent(policy, history=2)], [specs[record["episode_id"]]], strict=True)
        assert rollout.record["success"] and len(policy.asked) == len(episode_rows)
        for row, (messages, images) in zip(episode_rows, policy.asked):
            assert row["messages"][:-1] == messages
            assert len(row["images"]) == len(images) <= 2
            for path, image in zip(row["images"], images):
                assert np.array_equal(np.asarray(Image.open(data_dir / path)), image)


def test_the_dataset_has_the_trl_layout(data_dir):
    dataset = load_sft_dataset(data_dir)
    assert set(dataset.column_names) == {"id", "messages", "images"}
    row = dataset[0]
    assert row["messages"][0]["role"] == "user" and row["messages"][-1]["role"] == "assistant"
    assert all(isinstance(image, Image.Image) and image.size == VIEW for image in row["images"])


def test_a_rerun_continues_where_the_last_stopped(val, data_dir, tmp_path):
    out = tmp_path / "data"
    build_expert_data(val, out, limit=3, view_size=VIEW, progress=False)
    with open(out / EPISODES_FILE, "a") as handle:
        handle.write('{"episode_id": "torn')  # a line cut short by kill -9
    counts = build_expert_data(val, out, limit=6, view_size=VIEW, progress=False)
    assert counts["new"] == 3 and counts["episodes"] == 6
    assert [row["id"] for row in read_rows(out)] == [row["id"] for row in read_rows(data_dir)]
    with pytest.raises(ExpertDataError, match="prompt_format"):
        build_expert_data(val, out, limit=6, view_size=VIEW, prompt_format="grounding", progress=False)


def test_sharegpt_export(data_dir, tmp_path):
    path = export_sharegpt(data_dir)
    rows = json.loads(path.read_text())
    assert len(rows) == len(read_rows(data_dir))
    for row in rows:
        assert [turn["from"] for turn in row["conversations"]][-1] == "gpt"
        assert sum(turn["value"].count("<image>") for turn in row["conversations"]) == len(row["images"])
        assert all((data_dir / image).is_file() for image in row["images"])
    info = json.loads((data_dir / "dataset_info.json").read_text())
    assert info["panoseek_experts"]["file_name"] == path.name


def _damaged_copy(data_dir, tmp_path, change):
    import shutil

    out = tmp_path / "damaged"
    shutil.copytree(data_dir, out)
    records = [json.loads(line) for line in (out / EPISODES_FILE).read_text().splitlines()]
    change(out, records[0]["rows"][1])
    (out / EPISODES_FILE).write_text("".join(json.dumps(record) + "\n" for record in records))
    return out, records[0]["rows"][1]["id"]


def test_a_row_with_a_missing_image_is_one_clear_error(data_dir, tmp_path):
    out, name = _damaged_copy(data_dir, tmp_path, lambda out, row: (out / row["images"][-1]).unlink())
    with pytest.raises(DatasetError, match=rf"row '{name}': image .* is missing"):
        read_rows(out)


def test_a_conversation_without_an_assistant_turn_is_one_clear_error(data_dir, tmp_path):
    out, name = _damaged_copy(data_dir, tmp_path, lambda out, row: row["messages"].pop())
    with pytest.raises(DatasetError, match=rf"row '{name}' has no assistant turn"):
        read_rows(out)


def test_the_cli_builds_and_exports(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["data", "experts", "--suite", "synth:val", "--out", str(out), "--limit", "2",
                 "--view-size", "112x63", "--prompt-format", "grounding", "--no-progress"]) == 0
    assert "2 new episodes" in capsys.readouterr().out
    assert main(["data", "export-sharegpt", "--data", str(out)]) == 0
    assert main(["data", "experts", "--suite", "synth:nope", "--out", str(out)]) == 2
    assert "synth" in capsys.readouterr().err
