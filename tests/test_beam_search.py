"""Batched beam search (`sparsetrain.tasks._beam`) against brute-force enumeration.

The models here are fixed bigram tables: the next token's log-probabilities depend only on the
last token and on which sentence the row belongs to. Token 0 is bos (never generated), 1 eos.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from sparsetrain.tasks._beam import beam_search

BOS, EOS = 0, 1


def bigram_model(tables: torch.Tensor):
    """tables (sentences, vocab, vocab) of log-probs; the state is each row's sentence id."""

    def step(tokens, sentence_of_row):
        return tables[sentence_of_row, tokens], sentence_of_row

    def reorder(sentence_of_row, rows):
        return sentence_of_row[rows]

    return step, reorder


def table(rows: dict[int, list[float]], vocab: int) -> torch.Tensor:
    """A (vocab, vocab) log-prob table from probabilities; rows not given stay at eos."""
    probabilities = torch.zeros(vocab, vocab)
    probabilities[:, EOS] = 1.0
    for token, row in rows.items():
        probabilities[token] = torch.tensor(row)
    return probabilities.log()


def brute_force_best(log_probs: torch.Tensor, max_length: int, length_penalty: float):
    """Score every sequence of at most max_length tokens (then eos); the best one."""
    vocab = log_probs.shape[0]
    best = (-math.inf, None)
    for length in range(max_length + 1):
        for tokens in itertools.product(range(2, vocab), repeat=length):
            path = (BOS, *tokens, EOS)
            total = sum(log_probs[a, b].item() for a, b in zip(path, path[1:]))
            score = total / ((5 + length + 1) / 6) ** length_penalty
            if score > best[0]:
                best = (score, tokens)
    return best


def search(tables, beam_size, max_length=4, length_penalty=0.0):
    step, reorder = bigram_model(tables)
    return beam_search(step, reorder, torch.arange(tables.shape[0]), tables.shape[0], bos=BOS,
                       eos=EOS, beam_size=beam_size, max_length=max_length,
                       length_penalty=length_penalty)


# After bos: a 0.5, b 0.4, eos 0.1. After a: nothing good (a, b 0.35, eos 0.3). After b: eos 0.9.
# Greedy takes a (0.5) and ends with at best 0.5 * 0.3; the best sequence is b eos (0.36).
GREEDY_IS_WRONG = table({BOS: [0, 0.1, 0.5, 0.4], 2: [0, 0.3, 0.35, 0.35],
                         3: [0, 0.9, 0.05, 0.05]}, vocab=4)


def test_a_beam_of_two_finds_the_best_sequence_where_greedy_does_not():
    tables = GREEDY_IS_WRONG.unsqueeze(0)
    greedy = search(tables, beam_size=1)[0]
    beam = search(tables, beam_size=2)[0]
    score, tokens = brute_force_best(GREEDY_IS_WRONG, max_length=4, length_penalty=0.0)
    assert tokens == (3,) and beam.tokens == tokens
    assert beam.log_prob == pytest.approx(math.log(0.4 * 0.9), rel=1e-6)
    assert beam.score == pytest.approx(score, rel=1e-6)
    assert greedy.tokens[0] == 2 and greedy.score < beam.score


def test_beam_size_one_is_the_greedy_choice_at_every_step():
    tables = torch.randn(3, 6, 6).log_softmax(dim=2)
    tables[:, :, BOS] = -math.inf
    for sentence, hypothesis in enumerate(search(tables, beam_size=1, max_length=5)):
        token, expected = BOS, []
        for _ in range(5):
            token = int(tables[sentence, token].argmax())
            if token == EOS:
                break
            expected.append(token)
        assert hypothesis.tokens == tuple(expected)


@pytest.mark.parametrize("length_penalty", [0.0, 0.6, 2.0])
def test_a_beam_wider_than_every_prefix_finds_the_brute_force_best_for_each_sentence(
        length_penalty):
    generator = torch.Generator().manual_seed(3)
    tables = torch.randn(5, 5, 5, generator=generator).mul(2).log_softmax(dim=2)
    tables[:, :, BOS] = -math.inf
    tables = tables.log_softmax(dim=2)
    # 3 tokens other than bos/eos, at most 3 of them: 1 + 3 + 9 + 27 = 40 sequences < 64.
    hypotheses = search(tables, beam_size=64, max_length=3, length_penalty=length_penalty)
    for sentence, hypothesis in enumerate(hypotheses):
        score, tokens = brute_force_best(tables[sentence], 3, length_penalty)
        assert hypothesis.tokens == tokens
        assert hypothesis.score == pytest.approx(score, rel=1e-5)


def test_sentences_in_one_batch_get_their_own_best_sequences():
    other = table({BOS: [0, 0.2, 0.3, 0.5], 2: [0, 0.9, 0.05, 0.05], 3: [0, 0.1, 0.8, 0.1]},
                  vocab=4)
    tables = torch.stack([GREEDY_IS_WRONG, other, GREEDY_IS_WRONG])
    hypotheses = search(tables, beam_size=3)
    for sentence, hypothesis in enumerate(hypotheses):
        assert hypothesis.tokens == brute_force_best(tables[sentence], 4, 0.0)[1]
    assert hypotheses[1].tokens == (3, 2)


def test_without_a_likely_eos_output_stops_at_max_length_tokens():
    # eos is never among the best two candidates until it is the only token allowed.
    looping = table({token: [0, 1e-6, 0.5, 0.5 - 1e-6] for token in (BOS, 2, 3)}, vocab=4)
    hypothesis = search(looping.unsqueeze(0), beam_size=2, max_length=6)[0]
    assert len(hypothesis.tokens) == 6 and set(hypothesis.tokens) <= {2, 3}
