"""The `lm` task: PTB reading, batching, the model, carried state and perplexity."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from sparsetrain import ConfigError
from sparsetrain.config.schema import DataConfig, EvalConfig, ModelConfig, Recipe, TrainConfig
from sparsetrain.tasks._corpus import build_vocab, columns, encode, read_words
from sparsetrain.tasks.lm import LanguageModel


def task_for(folder: Path, hidden=8, layers=1, batch=3, bptt=4, tied=False, dropout=0.0,
             init_scale=0.1) -> LanguageModel:
    recipe = Recipe(data=DataConfig(dir=str(folder)),
                    model=ModelConfig(hidden_size=hidden, num_layers=layers, tied=tied),
                    train=TrainConfig(batch_size=batch, bptt=bptt, dropout=dropout,
                                      init_scale=init_scale),
                    eval=EvalConfig(batch_size=batch))
    task = LanguageModel(recipe, torch.device("cpu"), torch.float32)
    task.build_data()
    return task


def test_words_are_split_on_whitespace_with_eos_at_each_line_end(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(" the cat \n sat  on\tit \n")
    assert read_words(path) == ["the", "cat", "<eos>", "sat", "on", "it", "<eos>"]


def test_the_real_ptb_has_its_published_token_and_vocabulary_counts(ptb_dir):
    words = read_words(ptb_dir / "ptb.train.txt")
    assert len(words) == 929_589
    assert len(build_vocab(words)) == 10_000


def test_a_word_unknown_to_train_becomes_unk_or_is_refused_naming_the_file(tmp_path):
    vocab = build_vocab(["a", "<unk>", "<eos>"])
    assert encode(["a", "zebra"], vocab, tmp_path / "v.txt").tolist() == [0, 1]
    with pytest.raises(ConfigError, match="v.txt: word 'zebra'"):
        encode(["zebra"], build_vocab(["a"]), tmp_path / "v.txt")


@pytest.mark.parametrize("pad", [False, True])
def test_columns_are_contiguous_chunks_with_next_token_targets(pad):
    stream = torch.arange(100, 111)  # 11 tokens, 10 predictions
    inputs, targets = columns(stream, 3, pad=pad)
    rows = 4 if pad else 3
    assert inputs.shape == targets.shape == (rows, 3)
    for b in range(3):
        for t in range(rows):
            position = b * rows + t
            if position < 10:
                assert inputs[t, b] == stream[position]
                assert targets[t, b] == stream[position + 1]
            else:
                assert targets[t, b] == -1
    scored = sorted(targets[targets >= 0].tolist())
    assert scored == (list(range(101, 111)) if pad else list(range(101, 110)))


def test_parameters_start_uniform_within_init_scale(tiny_ptb):
    model = task_for(tiny_ptb, init_scale=0.05).build_model()
    for parameter in model.parameters():
        assert parameter.abs().max() <= 0.05
        assert parameter.abs().max() > 0.04  # spread over the whole interval, not all zero


def test_tied_softmax_shares_the_embedding_matrix(tiny_ptb):
    model = task_for(tiny_ptb, tied=True).build_model()
    assert model.decoder.weight is model.embedding.weight


def test_the_hidden_state_is_carried_between_batches_and_reset_per_epoch(tiny_ptb):
    task = task_for(tiny_ptb, bptt=4)
    model = task.build_model()
    task.start_epoch(0)
    first, second = task.train_step(model, 0), task.train_step(model, 1)
    inputs, targets = task.train_data
    logits, _ = model(inputs[:8])  # both segments as one sequence: the state flows through
    expected = F.cross_entropy(logits[4:].flatten(0, 1), targets[4:8].flatten())
    assert second.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert not task.hidden[0].requires_grad
    task.start_epoch(1)
    assert task.hidden is None
    assert first.objective.item() == pytest.approx(first.loss.item() * 4, rel=1e-6)


def test_perplexity_is_exp_of_the_mean_token_nll_over_the_whole_split(tiny_ptb):
    task = task_for(tiny_ptb, layers=2, batch=3, bptt=4)
    model = task.build_model().eval()
    stream = encode(read_words(tiny_ptb / "ptb.valid.txt"), task.vocab,
                    tiny_ptb / "ptb.valid.txt")
    predictions = stream.numel() - 1
    rows = -(-predictions // 3)
    total, count = 0.0, 0
    with torch.no_grad():
        for column in range(3):  # each column is a contiguous chunk that starts cold
            state = None
            for position in range(column * rows, min((column + 1) * rows, predictions)):
                output, state = model.lstm(model.embedding(stream[position]).view(1, 1, -1),
                                           state)
                log_probs = torch.log_softmax(model.decoder(output.view(-1)).double(), 0)
                total -= log_probs[stream[position + 1]].item()
                count += 1
    assert count == predictions
    assert task.evaluate(model, "valid") == pytest.approx(math.exp(total / count), rel=1e-5)


def test_steps_per_epoch_counts_full_bptt_segments(tiny_ptb):
    task = task_for(tiny_ptb, batch=3, bptt=4)
    tokens = len(read_words(tiny_ptb / "ptb.train.txt"))
    assert task.steps_per_epoch == ((tokens - 1) // 3) // 4


def test_a_corrupt_file_is_refused_naming_it(tiny_ptb):
    (tiny_ptb / "ptb.valid.txt").write_bytes(b"ok words\n\x00\x00\x00")
    with pytest.raises(ConfigError, match="ptb.valid.txt: contains NUL bytes"):
        task_for(tiny_ptb)
