"""The `translate` task: subword pieces, batches, the attention model, BLEU, a tiny run."""

from __future__ import annotations

import gzip
import json
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import shared_dataset
from torch.nn import functional as F

from sparsetrain import ConfigError
from sparsetrain.cli import main
from sparsetrain.config.schema import (DataConfig, DecodeConfig, EvalConfig, ModelConfig,
                                       Recipe, TrainConfig)
from sparsetrain.tasks import _subword
from sparsetrain.tasks._batches import PairBatches
from sparsetrain.tasks._seq2seq import reversed_within_lengths
from sparsetrain.tasks._subword import BOS, EOS, PAD, read_sentences, subwords_for
from sparsetrain.tasks.translate import SPLIT_FILES, Translation

LINES = {"train": 320, "val": 24, "test_2016_flickr": 24}


@pytest.fixture(scope="session")
def multi30k_dir() -> Path:
    return shared_dataset("multi30k", ("raw/train.en.gz",))


@pytest.fixture
def tiny_multi30k(multi30k_dir: Path, tmp_path: Path, monkeypatch) -> Path:
    """Gzipped heads of the real Multi30k files; the subword cache in tmp_path too."""
    monkeypatch.setenv("SPARSETRAIN_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "multi30k"
    (folder / "raw").mkdir(parents=True)
    for stem, lines in LINES.items():
        for language in ("en", "de"):
            name = f"raw/{stem}.{language}.gz"
            with gzip.open(multi30k_dir / name, "rt", encoding="utf-8") as source:
                head = [next(source) for _ in range(lines)]
            with gzip.open(folder / name, "wt", encoding="utf-8") as target:
                target.write("".join(head))
    return folder


def task_for(folder: Path, batch=32, hidden=32, decoder_layers=2, dropout=0.0,
             **decode) -> Translation:
    recipe = Recipe(task="translate", data=DataConfig(dir=str(folder), vocab_size=400),
                    model=ModelConfig(hidden_size=hidden, num_layers=decoder_layers),
                    train=TrainConfig(batch_size=batch, dropout=dropout, init_scale=0.1),
                    eval=EvalConfig(batch_size=7), decode=DecodeConfig(**decode))
    task = Translation(recipe, torch.device("cpu"), torch.float32)
    task.build_data()
    return task


def test_decoding_the_pieces_of_real_sentences_gives_the_sentences_back(tiny_multi30k,
                                                                         multi30k_dir):
    task = task_for(tiny_multi30k)
    for language in ("en", "de"):  # unseen sentences: their rare characters become bytes
        sentences = read_sentences(multi30k_dir / f"raw/val.{language}.gz")[:300]
        pieces = task.subwords.encode(sentences)
        assert max(max(ids) for ids in pieces) < task.subwords.size
        assert task.subwords.decode(pieces) == sentences


def test_the_subword_model_is_trained_once_and_then_read_from_the_cache(tiny_multi30k,
                                                                        monkeypatch):
    files = [tiny_multi30k / "raw/train.en.gz", tiny_multi30k / "raw/train.de.gz"]
    sentences = read_sentences(files[0]) + read_sentences(files[1])
    first = subwords_for(sentences, 400)
    assert first == _subword.train_subwords(sentences, 400)  # deterministic: same bytes

    def no_training(*args):
        raise AssertionError("trained again")

    monkeypatch.setattr(_subword, "train_subwords", no_training)
    assert subwords_for(sentences, 400) == first
    assert len(list((tiny_multi30k.parent / "cache" / "sentencepiece").iterdir())) == 1
    with pytest.raises(AssertionError, match="trained again"):
        subwords_for(sentences, 401)  # another vocabulary size is another model


def test_every_training_batch_has_batch_size_pairs_padded_and_shifted(tiny_multi30k):
    task = task_for(tiny_multi30k, batch=48)
    assert task.steps_per_epoch == 320 // 48
    task.start_epoch(0)
    seen = []
    for index in range(task.steps_per_epoch):
        rows = task._batches[index]
        batch = task.train_pairs.batch(rows)
        assert batch.source.shape[1] == batch.target.shape[1] == 48
        for column, row in enumerate(rows.tolist()):
            source = task.train_pairs.sources[row]
            length = int(batch.source_lengths[column])
            assert batch.source[:length, column].tolist() == source[:length].tolist()
            assert batch.source[length - 1, column] == EOS
            assert (batch.source[length:, column] == PAD).all()
            real = int((batch.target[:, column] != PAD).sum())
            assert batch.target[real - 1, column] == EOS
            assert batch.decoder_input[0, column] == BOS
            assert batch.decoder_input[1:real, column].tolist() == \
                batch.target[:real - 1, column].tolist()
            assert (batch.decoder_input[real:, column] == PAD).all()
        seen.extend(rows.tolist())
    assert len(seen) == len(set(seen)) == 48 * (320 // 48)


def test_an_epochs_batch_order_depends_on_seed_and_epoch_only(tiny_multi30k):
    task, again = task_for(tiny_multi30k), task_for(tiny_multi30k)
    task.start_epoch(2)
    again.start_epoch(2)  # what a run resumed in epoch 2 does
    assert all(torch.equal(a, b) for a, b in zip(task._batches, again._batches))
    again.start_epoch(3)
    assert not all(torch.equal(a, b) for a, b in zip(task._batches, again._batches))


def test_batches_group_sentences_of_similar_length():
    sources = [[5] * length for length in (1, 9, 2, 8, 3, 7, 4, 6)]
    pairs = PairBatches(sources, sources, torch.device("cpu"))
    for rows in pairs.epoch_order(batch_size=4, seed=0):
        lengths = sorted(len(sources[row]) for row in rows.tolist())
        assert lengths in ([1, 2, 3, 4], [6, 7, 8, 9])


def test_reversing_within_lengths_leaves_padding_in_place():
    index = reversed_within_lengths(torch.tensor([3, 1, 4]), 4)
    assert index.t().tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]


def test_padding_changes_neither_the_encoding_nor_the_translation_of_a_sentence(
        tiny_multi30k):
    task = task_for(tiny_multi30k)
    model = task.build_model().eval()
    sources = [task.eval_sources["valid"][i] + [EOS] for i in range(4)]
    width = max(map(len, sources))
    batch = torch.tensor([s + [PAD] * (width - len(s)) for s in sources]).t()
    lengths = torch.tensor([len(s) for s in sources])
    with torch.no_grad():
        state = model.encode(batch, lengths)
        outputs, _ = model.decoder(torch.randn(5, 4, 32), (state["h"], state["c"]))
        _, weights = model.attend(outputs, state)
        for column, source in enumerate(sources):
            alone = model.encode(torch.tensor(source).unsqueeze(1), lengths[column:column + 1])
            length = len(source)
            torch.testing.assert_close(state["memory"][:length, column],
                                       alone["memory"][:, 0])
            torch.testing.assert_close(state["h"][:, column], alone["h"][:, 0])
            assert (weights[column, :, length:] == 0).all()  # exactly zero on padding
            assert weights[column, :, :length].sum(1).sub(1).abs().max() < 1e-5
    assert task.translate(model, task.eval_sources["valid"][:4]) == \
        [task.translate(model, [s])[0] for s in task.eval_sources["valid"][:4]]


def test_decoding_step_by_step_gives_the_teacher_forced_log_probabilities(tiny_multi30k):
    task = task_for(tiny_multi30k)
    model = task.build_model().eval()
    task.start_epoch(0)
    batch = task.train_pairs.batch(task._batches[0][:3])
    with torch.no_grad():
        logits = model(batch.source, batch.source_lengths, batch.decoder_input)
        state = model.encode(batch.source, batch.source_lengths)
        for position in range(batch.decoder_input.shape[0]):
            log_probs, state = model.step(batch.decoder_input[position], state)
            torch.testing.assert_close(log_probs, logits[position].log_softmax(1),
                                       atol=1e-5, rtol=1e-5)


def test_the_loss_is_the_mean_nll_of_the_real_target_tokens_only(tiny_multi30k):
    task = task_for(tiny_multi30k)
    model = task.build_model()
    task.start_epoch(0)
    step = task.train_step(model, 0)
    batch = task.train_pairs.batch(task._batches[0])
    with torch.no_grad():
        logits = model(batch.source, batch.source_lengths, batch.decoder_input)
    total, count = 0.0, 0
    for t in range(batch.target.shape[0]):
        for n in range(batch.target.shape[1]):
            if batch.target[t, n] != PAD:
                total -= F.log_softmax(logits[t, n].double(), 0)[batch.target[t, n]].item()
                count += 1
    assert step.items == count
    assert step.loss.item() == pytest.approx(total / count, rel=1e-5)


def test_weights_start_uniform_within_init_scale_and_embeddings_standard_normal(
        tiny_multi30k):
    model = task_for(tiny_multi30k).build_model()
    for name, parameter in model.named_parameters():
        if name.endswith("embedding.weight"):
            assert 0.9 < parameter.std() < 1.1
        else:
            assert parameter.abs().max() <= 0.1


def test_a_missing_data_file_is_named(tiny_multi30k):
    (tiny_multi30k / "raw/val.de.gz").unlink()
    with pytest.raises(ConfigError, match="missing raw/val.de.gz"):
        task_for(tiny_multi30k)


def test_a_split_whose_files_differ_in_length_is_refused(tiny_multi30k):
    with gzip.open(tiny_multi30k / "raw/test_2016_flickr.de.gz", "wt") as handle:
        handle.write("nur ein Satz\n")
    with pytest.raises(ConfigError, match="test_2016_flickr.en.gz has 24 lines"):
        task_for(tiny_multi30k)


TINY_RECIPE = """
    task: translate
    seed: 5
    device: cpu
    data: {{dir: {data}, vocab_size: 400}}
    model: {{hidden_size: 32, num_layers: 2, encoder_layers: 2}}
    method: {{name: coarse, R: 8, S: 4}}
    train: {{steps: 3, batch_size: 64, optimizer: adam, lr: 0.003, log_every: 3,
             dropout: 0.1, init_scale: 0.1, label_smoothing: 0.1}}
    eval: {{batch_size: 8}}
    decode: {{beam_size: 2, max_length: 12}}
"""


def test_a_tiny_coarse_run_trains_every_lstm_sparsely_and_reports_bleu(tiny_multi30k,
                                                                     tmp_path):
    recipe = tmp_path / "nmt.yaml"
    recipe.write_text(textwrap.dedent(TINY_RECIPE).format(data=tiny_multi30k))
    result = CliRunner().invoke(main, ["run", str(recipe), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "nmt"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 3
    assert set(summary["final"]) == {"valid_bleu", "test_bleu"}
    assert all(0 <= value <= 100 for value in summary["final"].values())
    assert summary["metric"]["signature"].startswith("nrefs:1|")
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    layers = next(line for line in lines if line["event"] == "train")["layers"]
    # forward + backward first encoder layer, one more encoder layer, two decoder layers
    assert len(layers) == 5
    assert all(layer["sparsity"] == pytest.approx(0.5, abs=0.01) for layer in layers)


def test_the_split_files_are_multi30ks_usual_ones():
    assert SPLIT_FILES == {"train": "train", "valid": "val", "test": "test_2016_flickr"}


RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_the_nmt_recipe_has_the_papers_architecture_and_table4_variants_load():
    import yaml

    from sparsetrain.config import load_recipe

    recipe = load_recipe(RECIPES / "multi30k-nmt.yaml")
    assert recipe.task == "translate"
    assert (recipe.model.hidden_size, recipe.model.encoder_layers, recipe.model.num_layers) \
        == (512, 2, 4)
    assert recipe.train.batch_size % 64 == 0 and recipe.train.optimizer == "adam"
    sweep = yaml.safe_load((RECIPES / "table4.yaml").read_text())
    assert sweep["base"] == "multi30k-nmt.yaml" and len(sweep["variants"]) == 7
    sparse_shares = []
    for variant in sweep["variants"]:
        settings = {**sweep["set"], **variant["set"]}
        overrides = [f"{key}={json.dumps(value)}" for key, value in settings.items()]
        phases = load_recipe(RECIPES / sweep["base"],
                             overrides).schedule
        sparse_shares.append(sum(p.share for p in phases if p.method["name"] != "dense"))
    assert sparse_shares == pytest.approx([0, 1, 0.75, 5 / 6, 1, 0.75, 5 / 6])
