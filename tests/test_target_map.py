"""The target-map loss of SFT: where the target is in each view, which image token is
labelled for it, the per-view cell softmax, and the loss in a short SFT run (it falls, the
reply labels are untouched, and bad input is one clear error)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from conftest import make_task
from panoseek.envs.task import HOS, HPS
from panoseek.training.collator import IGNORE, LastReplyCollator
from panoseek.training.dataset import DatasetError, load_sft_dataset
from panoseek.training.expert_data import DATA_FILE, build_expert_data
from panoseek.training.sft import SFTError, SFTOptions, load_model, row_lengths, train_sft
from panoseek.training.target_map import (
    NOT_IN_VIEW, TargetMapError, cell_scores, target_labels, target_map_loss, target_token_ids, view_points,
)

VIEW = (112, 63)
IMAGE, HERE_ID, ELSEWHERE_ID = 5, 9, 13


def test_view_points_follow_the_target_and_path_search_has_none():
    task = make_task(kind=HOS)  # target centre (90, 0)
    centre, right, behind = view_points(task, [(90, 0), (60, 0), (270, 0)], 100.0, (200, 100))
    assert centre == pytest.approx((0.5, 0.5), abs=1e-9)
    assert 0.6 < right[0] < 1.0 and right[1] == pytest.approx(0.5)  # turned left of it: it is to the right
    assert behind == NOT_IN_VIEW
    assert view_points(make_task(kind=HPS), [(90, 0)], 100.0, (200, 100)) is None


def _ids(*runs):
    """Input ids: text token 1 around runs of image tokens of the given lengths."""
    ids = [1]
    for length in runs:
        ids += [IMAGE] * length + [1]
    return ids


def test_the_labelled_cell_is_the_one_holding_the_point():
    # Row 0: a 2x4 merged grid (patches 4x8) and a 1x2 grid; row 1 (path search): one 2x4 grid.
    rows = [_ids(8, 2), _ids(8)]
    width = max(map(len, rows))
    input_ids = torch.tensor([row + [0] * (width - len(row)) for row in rows])
    grids = torch.tensor([[1, 4, 8], [1, 2, 4], [1, 4, 8]])
    points = [[[0.9, 0.6], list(NOT_IN_VIEW)], []]
    labels, views = target_labels(input_ids, grids, points, IMAGE, HERE_ID, ELSEWHERE_ID)
    first = torch.nonzero(input_ids[0] == IMAGE).flatten()
    assert labels[0, first[:8]].tolist() == [ELSEWHERE_ID] * 7 + [HERE_ID]  # row 1, column 3 of 2x4: the last cell
    assert views[0, first[:8]].tolist() == [0] * 8
    assert labels[0, first[8:]].tolist() == [ELSEWHERE_ID] * 2 and views[0, first[8:]].tolist() == [1, 1]
    assert bool((labels[1] == IGNORE).all()) and bool((views[1] == -1).all())
    assert bool((labels[0][input_ids[0] != IMAGE] == IGNORE).all())
    with pytest.raises(TargetMapError, match="2 images but 1 target points"):
        target_labels(input_ids, grids, [[[0.5, 0.5]], []], IMAGE, HERE_ID, ELSEWHERE_ID)
    with pytest.raises(TargetMapError, match="image_grid_thw lists 4"):
        target_labels(input_ids, torch.cat([grids, grids[:1]]), points, IMAGE, HERE_ID, ELSEWHERE_ID)


def test_the_cell_softmax_by_hand():
    labels = torch.tensor([[ELSEWHERE_ID, HERE_ID, ELSEWHERE_ID, ELSEWHERE_ID, IGNORE]])
    views = torch.tensor([[0, 0, 1, 1, -1]])
    scores = torch.tensor([[0.0, 2.0, -1.0, 3.0, 50.0]])
    loss, accuracy = target_map_loss(scores, labels, views, HERE_ID)
    # view 0: choices (0, 2, none 0), answer cell 1; view 1: choices (-1, 3, none 0), answer none
    expected = (-(2 - math.log(1 + math.exp(2) + 1)) - (0 - math.log(math.exp(-1) + math.exp(3) + 1))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert accuracy == 0.5  # view 0 right, view 1 picks the cell scored 3
    none, nan = target_map_loss(scores, torch.full_like(labels, IGNORE), torch.full_like(views, -1), HERE_ID)
    assert float(none) == 0.0 and math.isnan(nan)


def test_scores_are_the_logit_difference_of_the_two_tokens():
    hidden, weight = torch.randn(2, 3, 4), torch.randn(16, 4)
    logits = hidden @ weight.T
    assert torch.allclose(cell_scores(hidden, weight, HERE_ID, ELSEWHERE_ID),
                          logits[..., HERE_ID] - logits[..., ELSEWHERE_ID], atol=1e-6)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from panoseek.scenes import load_suite

    out = tmp_path_factory.mktemp("target-map") / "data"
    build_expert_data(load_suite("synth:val"), out, limit=4, view_size=VIEW, progress=False)
    return out


def test_a_batch_labels_object_search_views_and_leaves_the_replies_alone(tiny_model_dir, data_dir):
    _, processor = load_model(tiny_model_dir)
    dataset = load_sft_dataset(data_dir, target_map=True)
    kinds = {row["id"]: ("hps" in row["id"]) for row in dataset}
    assert any(kinds.values()) and not all(kinds.values())
    rows = [dict(dataset[i]) for i in range(len(dataset))]
    length = max(row_lengths(processor, None, [row["messages"] for row in rows], VIEW)) + 3
    plain = LastReplyCollator(processor, None, length)([{k: v for k, v in r.items() if k != "target_points"} for r in rows])
    batch = LastReplyCollator(processor, None, length, target_map=True)(rows)
    assert torch.equal(batch["labels"], plain["labels"]) and torch.equal(batch["input_ids"], plain["input_ids"])
    image_id, here_id, elsewhere_id = target_token_ids(processor)
    merged = (batch["image_grid_thw"][0, 1] // 2, batch["image_grid_thw"][0, 2] // 2)
    in_view = 0
    for row, (labels, views) in enumerate(zip(batch["target_labels"], batch["target_views"])):
        if kinds[rows[row]["id"]]:
            assert bool((views == -1).all())
            continue
        numbers = views[views >= 0].unique()
        assert len(numbers) == len(rows[row]["images"])
        for number, (x, y) in zip(numbers, rows[row]["target_points"]):
            cells = labels[views == number]
            assert len(cells) == merged[0] * merged[1]
            if [x, y] == list(NOT_IN_VIEW):
                assert bool((cells == elsewhere_id).all())
            else:
                [cell] = torch.nonzero(cells == here_id).flatten().tolist()
                assert divmod(cell, int(merged[1])) == (int(y * merged[0]), int(x * merged[1]))
                in_view += 1
    assert in_view > 0


def _held_in_target_loss(model_dir, processor, batch):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype="float32").eval()
    inputs = {k: v for k, v in batch.items() if k not in ("target_labels", "target_views")}
    _, here_id, elsewhere_id = target_token_ids(processor)
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states[-1]
        scores = cell_scores(hidden, model.get_output_embeddings().weight, here_id, elsewhere_id)
        return float(target_map_loss(scores, batch["target_labels"], batch["target_views"], here_id)[0])


@pytest.mark.slow
def test_a_few_steps_with_the_target_loss_lower_it_and_log_it(tiny_model_dir, data_dir, tmp_path):
    options = SFTOptions(max_steps=10, save_steps=10, lr=3e-3, batch_size=4, target_loss=1.0)
    summary = train_sft(tiny_model_dir, data_dir, tmp_path / "run", options, eval_dir=data_dir, progress=False)
    assert summary["finished"]
    state = json.loads(sorted((tmp_path / "run").glob("checkpoint-*/trainer_state.json"))[-1].read_text())
    logged = [entry for entry in state["log_history"] if "target_loss" in entry]
    assert logged and all(0.0 <= entry["target_accuracy"] <= 1.0 for entry in logged)
    assert any("eval_target_loss" in entry for entry in state["log_history"])
    _, processor = load_model(tiny_model_dir)
    dataset = load_sft_dataset(data_dir, target_map=True)
    rows = [dict(dataset[i]) for i in range(len(dataset)) if "hos" in dataset[i]["id"]][:6]
    length = max(row_lengths(processor, None, [row["messages"] for row in rows], VIEW)) + 3
    batch = LastReplyCollator(processor, None, length, target_map=True)(rows)
    before = _held_in_target_loss(tiny_model_dir, processor, batch)
    after = _held_in_target_loss(tmp_path / "run" / "final", processor, batch)
    assert after < before - 0.1


def test_bad_target_loss_input_is_one_clear_error(tiny_model_dir, data_dir, tmp_path):
    with pytest.raises(SFTError, match="--target-loss must be a weight of 0 or more"):
        SFTOptions(target_loss=-1.0).check()
    changed = tmp_path / "data"
    shutil.copytree(data_dir, changed)
    info = json.loads((changed / DATA_FILE).read_text())
    (changed / DATA_FILE).write_text(json.dumps({**info, "fingerprint": "0000000000000000"}))
    with pytest.raises(DatasetError, match=rf"--target-loss needs the suite of '{changed}'.*fingerprint"):
        load_sft_dataset(changed, target_map=True)
    load_sft_dataset(changed)  # without the target map the rows still train

    class Tokenizer:
        unk_token_id = 0

        def convert_tokens_to_ids(self, token):
            return 0

    class Processor:
        tokenizer, image_token = Tokenizer(), "<|image_pad|>"

    with pytest.raises(TargetMapError, match="has no '<\\|image_pad\\|>' token"):
        target_token_ids(Processor())
