"""The `caption` task: data layout, vocabulary, full batches, the image as first input, beam
search, BLEU-4 with all references, and short runs on slices of the real COCO subset."""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import shared_dataset
from sparsetrain import ConfigError
from sparsetrain.cli import main
from sparsetrain.config.schema import (DataConfig, DecodeConfig, EvalConfig, ModelConfig, Recipe,
                                       TrainConfig)
from sparsetrain.tasks._captions import build_vocab, epoch_batches, load, tokenize
from sparsetrain.tasks.caption import Caption

SUBSET_FILES = ("features_efficientnet_lite0_avgpool_fp16.npz", "captions.json", "splits.json")


@pytest.fixture(scope="session")
def subset_dir() -> Path:
    return shared_dataset("coco_val2017_subset_caption", SUBSET_FILES)


@pytest.fixture
def tiny_caption(subset_dir: Path, tmp_path: Path) -> Path:
    """A slice of the real subset in its layout: 40 train, 6 val, 6 test images."""
    splits = json.loads((subset_dir / "splits.json").read_text())
    ids = {"train": splits["train"][:40], "val": splits["val"][:6], "test": splits["test"][:6]}
    wanted = sorted(itertools.chain(*ids.values()))
    with np.load(subset_dir / SUBSET_FILES[0], allow_pickle=False) as archive:
        rows = np.searchsorted(archive["image_id"], wanted)
        image_id, feats = archive["image_id"][rows], archive["feats"][rows]
    captions = json.loads((subset_dir / "captions.json").read_text())
    folder = tmp_path / "caption"
    folder.mkdir()
    np.savez(folder / "features.npz", image_id=image_id, feats=feats)
    (folder / "captions.json").write_text(json.dumps({str(i): captions[str(i)] for i in wanted}))
    (folder / "splits.json").write_text(json.dumps(ids))
    return folder


def task_for(folder: Path, hidden=16, batch=8, vocab_size=None, beam=3, max_length=12,
             dropout=0.0, eval_batch=4) -> Caption:
    recipe = Recipe(task="caption", data=DataConfig(dir=str(folder), vocab_size=vocab_size),
                    model=ModelConfig(hidden_size=hidden, num_layers=1),
                    train=TrainConfig(batch_size=batch, dropout=dropout, init_scale=0.1),
                    eval=EvalConfig(batch_size=eval_batch),
                    decode=DecodeConfig(beam_size=beam, max_length=max_length,
                                        length_penalty=0.0))
    task = Caption(recipe, torch.device("cpu"), torch.float32)
    task.build_data()
    return task


def test_the_subset_loads_with_the_counts_its_readme_gives(subset_dir):
    data = load(subset_dir)
    assert data.feats.shape == (2822, 1280) and data.feats.dtype == torch.float32
    counts = {split: (len(s.captions), sum(map(len, s.captions)))
              for split, s in data.splits.items()}
    assert counts == {"train": (2222, 11115), "valid": (300, 1500), "test": (300, 1501)}


def test_coco_format_gzipped_captions_and_several_feature_files_load(tmp_path):
    files = ("features_train2017_efficientnet_lite0_avgpool.npz",
             "features_val2017_efficientnet_lite0_avgpool.npz",
             "captions_train2017_mini.json", "captions_val2017.json.gz")
    mini = shared_dataset("coco_mini_caption", files)
    for name in files:
        (tmp_path / name).symlink_to(mini / name)
    with np.load(mini / "features_val2017_efficientnet_lite0_avgpool.npz") as archive:
        val_ids = archive["image_id"].tolist()
    coco = json.loads((mini / "captions_train2017_mini.json").read_text())
    train_ids = sorted({a["image_id"] for a in coco["annotations"]})
    (tmp_path / "splits.json").write_text(json.dumps(
        {"train": train_ids, "val": val_ids[:79], "test": val_ids[79:]}))
    data = load(tmp_path)
    assert data.feats.shape == (239, 1280)
    assert [sum(map(len, data.splits[s].captions)) for s in ("train", "valid", "test")] == \
        [400, 395, 400]


def test_captions_are_lowercased_words_with_punctuation_dropped():
    assert tokenize("A man's dog,  running.\n") == ["a", "man's", "dog", "running"]
    assert tokenize("Two (2) cats -- on a MAT!") == ["two", "2", "cats", "on", "a", "mat"]


def test_the_vocabulary_is_specials_then_frequent_train_words():
    captions = [[["a", "dog"], ["a", "cat"]], [["a", "dog", "z"]]]
    assert list(build_vocab(captions, 5)) == ["<pad>", "<eos>", "<unk>", "a", "dog"]
    assert list(build_vocab(captions, 6)) == ["<pad>", "<eos>", "<unk>", "a", "dog", "cat"]
    many = [[["a"]] * 5 + [["b"]] * 4]
    assert list(build_vocab(many, None)) == ["<pad>", "<eos>", "<unk>", "a"]  # count >= 5
    with pytest.raises(ConfigError, match="data.vocab_size"):
        build_vocab(captions, 3)


def test_every_training_batch_is_full_length_bucketed_and_reproducible(tiny_caption):
    task = task_for(tiny_caption, batch=8)
    captions = task.lengths.numel()
    assert task.steps_per_epoch == captions // 8
    task.start_epoch(0)
    first = task.batches.clone()
    assert first.shape == (captions // 8, 8)
    assert first.unique().numel() == first.numel()  # each caption at most once an epoch
    spans = sorted((int(task.lengths[b].min()), int(task.lengths[b].max())) for b in first)
    assert all(high <= low_next for (_, high), (low_next, _) in zip(spans, spans[1:]))
    task.start_epoch(1)
    assert not torch.equal(task.batches, first)
    task.start_epoch(0)  # a run resumed in epoch 0 rebuilds the same batches
    for index in range(first.shape[0]):
        feats, words, targets = task.batch(index)
        assert torch.equal(task.batches[index], first[index])
        assert feats.shape[0] == words.shape[1] == targets.shape[1] == 8
        lengths = task.lengths[first[index]]
        assert words.shape[0] == int(lengths.max()) and targets.shape[0] == words.shape[0] + 1
        for column, length in enumerate(lengths.tolist()):
            assert torch.equal(targets[:length, column], words[:length, column])
            assert targets[length, column] == task.vocab["<eos>"]
            assert (targets[length + 1:, column] == -100).all()  # pads are not scored
            assert (words[length:, column] == task.vocab["<pad>"]).all()


def test_the_image_feature_is_the_first_lstm_input(tiny_caption):
    task = task_for(tiny_caption)
    model = task.build_model().eval()
    task.start_epoch(0)
    feats, words, _ = task.batch(0)
    seen = []
    model.lstm.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    logits = model(feats, words)
    assert torch.allclose(seen[0][0], model.image(feats))
    assert torch.allclose(seen[0][1:], model.embedding(words))
    first_step, _ = model.lstm(model.image(feats).unsqueeze(0))  # the image alone, by hand
    assert torch.allclose(logits[0], model.decoder(first_step[0]), atol=1e-6)
    changed = model(feats.flip(0), words)
    assert not torch.allclose(changed[0], logits[0])


def test_the_loss_is_the_mean_over_real_targets(tiny_caption):
    task = task_for(tiny_caption)
    model = task.build_model()
    task.start_epoch(0)
    feats, words, targets = task.batch(2)
    step = task.train_step(model, 2)
    log_probs = torch.log_softmax(model(feats, words), -1)
    real = targets >= 0
    expected = -log_probs.gather(2, targets.clamp(min=0).unsqueeze(2))[..., 0][real].mean()
    assert step.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert step.items == int(real.sum())


def test_beam_search_finds_the_highest_scoring_caption(tiny_caption):
    # 5 tokens (<pad> <eos> <unk> + 2 words), captions of at most 3 words: a beam of 40 holds
    # every candidate, so the search must return the best of all 40 scored by teacher forcing.
    task = task_for(tiny_caption, vocab_size=5, beam=40, max_length=3)
    torch.manual_seed(0)
    model = task.build_model().eval()
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=1.0)
    rows = task.eval_splits["valid"].rows[:3]
    found = task.generate(model, rows)
    eos = task.vocab["<eos>"]
    words = [index for index in range(5) if index not in (0, eos)]
    for row, caption in zip(rows, found):
        best, best_score = None, -float("inf")
        for length in range(4):
            for sequence in itertools.product(words, repeat=length):
                ids = torch.tensor(sequence, dtype=torch.long).view(-1, 1)
                with torch.no_grad():
                    log_probs = torch.log_softmax(model(task.feats[row:row + 1], ids), -1)
                score = sum(log_probs[t, 0, token].item()
                            for t, token in enumerate([*sequence, eos]))
                if score > best_score:
                    best, best_score = sequence, score
        assert caption == [task.words[index] for index in best]


def test_evaluation_scores_each_image_against_all_its_references(tiny_caption, monkeypatch):
    # BLEU itself is test_bleu's; here, that evaluation hands each image all its references.
    task = task_for(tiny_caption)
    split = task.eval_splits["valid"]
    monkeypatch.setattr(task, "generate", lambda model, rows: [image[-1] for image in
                                                              split.captions])
    assert task.evaluate(None, "valid") == pytest.approx(100.0)  # each is one of its refs
    assert task.metric.signature.startswith("nrefs:")


RUN_RECIPE = """
    task: caption
    seed: 3
    device: cpu
    data: {{dir: {data}}}
    model: {{hidden_size: 32, num_layers: 1}}
    method: {method}
    train: {{steps: 3, batch_size: 8, optimizer: adam, lr: 0.01, log_every: 1}}
    eval: {{batch_size: 6}}
    decode: {{beam_size: 2, max_length: 8}}
"""


def run_caption(tmp_path: Path, folder: Path, method: str) -> tuple[dict, list[dict]]:
    recipe = tmp_path / "cap.yaml"
    recipe.write_text(textwrap.dedent(RUN_RECIPE).format(data=folder, method=method))
    result = CliRunner().invoke(main, ["run", str(recipe), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "cap"
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return json.loads((run_dir / "summary.json").read_text()), lines


def test_a_short_caption_run_writes_valid_and_test_bleu(tiny_caption, tmp_path):
    summary, _ = run_caption(tmp_path, tiny_caption, "dense")
    assert summary["status"] == "completed" and summary["steps"] == 3
    assert set(summary["final"]) == {"valid_bleu", "test_bleu"}
    assert summary["metric"]["lower_is_better"] is False
    assert summary["metric"]["signature"].startswith("nrefs:")


def test_a_sparse_method_acts_on_the_caption_lstm(tiny_caption, tmp_path):
    _, lines = run_caption(tmp_path, tiny_caption, "{name: coarse, R: 8, S: 4}")
    train = [line for line in lines if line["event"] == "train"]
    assert train and all(line["sparsity"] == pytest.approx(0.5) for line in train)


def test_a_missing_captions_file_is_a_config_error_naming_it(tiny_caption):
    (tiny_caption / "captions.json").unlink()
    with pytest.raises(ConfigError, match=r"missing captions\*\.json"):
        task_for(tiny_caption)


def test_a_feature_file_without_its_arrays_is_a_config_error_naming_them(tiny_caption):
    np.savez(tiny_caption / "features.npz", image_id=np.arange(3))
    with pytest.raises(ConfigError, match=r"features\.npz: needs arrays image_id and feats, "
                                          r"has image_id"):
        task_for(tiny_caption)


def test_an_unreadable_feature_file_is_a_config_error_naming_it(tiny_caption):
    (tiny_caption / "features.npz").write_bytes(b"not an npz")
    with pytest.raises(ConfigError, match=r"features\.npz: not a readable \.npz"):
        task_for(tiny_caption)


def test_a_split_image_without_a_feature_is_refused_naming_splits_json(tiny_caption):
    splits = json.loads((tiny_caption / "splits.json").read_text())
    splits["test"].append(999_999_999)
    (tiny_caption / "splits.json").write_text(json.dumps(splits))
    with pytest.raises(ConfigError, match="splits.json: 1 of the 7 test images have no "
                                          "feature"):
        task_for(tiny_caption)


def test_batches_of_an_epoch_depend_only_on_the_seed():
    lengths = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5])
    assert torch.equal(epoch_batches(lengths, 4, 7), epoch_batches(lengths, 4, 7))
    assert epoch_batches(lengths, 4, 7).shape == (2, 4)
