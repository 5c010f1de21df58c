"""Corpus BLEU (`sparsetrain.tasks._bleu`): sacrebleu's numbers, one or many references."""

from __future__ import annotations

import math

import pytest
import sacrebleu

from sparsetrain.tasks._bleu import bleu_signature, corpus_bleu

HYPOTHESES = ["The cat sat on the mat.", "A man rides a red bike down the street.",
              "Two dogs play in the snow."]
REFERENCES = ["The cat sat on a mat.", "A man is riding a red bicycle down the road.",
              "Two dogs are playing in the snow."]


def test_one_reference_per_segment_gives_sacrebleus_corpus_bleu():
    result = corpus_bleu(HYPOTHESES, REFERENCES)
    assert result.score == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score)
    assert result.signature.startswith("nrefs:1|") and "tok:13a" in result.signature
    assert result.signature == bleu_signature(1)


def test_bleu_by_hand_is_the_geometric_mean_of_the_ngram_precisions():
    # "a b c d e" vs "a b c d f": 1- to 4-gram precisions 4/5, 3/4, 2/3, 1/2; equal lengths.
    expected = 100 * math.exp(sum(map(math.log, (4 / 5, 3 / 4, 2 / 3, 1 / 2))) / 4)
    assert corpus_bleu(["a b c d e"], ["a b c d f"]).score == pytest.approx(expected)
    assert corpus_bleu(["a b c d e"], ["a b c d e"]).score == pytest.approx(100.0)


def test_several_references_per_segment_are_sacrebleus_reference_streams():
    references = [[reference, hypothesis] for reference, hypothesis in
                  zip(REFERENCES, HYPOTHESES[1:] + HYPOTHESES[:1])]
    streams = [list(stream) for stream in zip(*references)]
    result = corpus_bleu(HYPOTHESES, references)
    assert result.score == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, streams).score)
    assert result.signature.startswith("nrefs:2|")


def test_segments_with_different_numbers_of_references_are_scored_as_sacrebleu_does():
    references = [[REFERENCES[0]], [REFERENCES[1], HYPOTHESES[1]], REFERENCES[2]]
    streams = [REFERENCES, [None, HYPOTHESES[1], None]]
    result = corpus_bleu(HYPOTHESES, references)
    assert result.score == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, streams).score)
    assert result.signature.startswith("nrefs:var|") and bleu_signature(0) == result.signature


def test_a_hypothesis_without_references_is_refused():
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference sets"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one reference"):
        corpus_bleu(["a"], [[]])
