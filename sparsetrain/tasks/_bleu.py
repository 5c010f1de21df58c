"""Corpus BLEU with sacrebleu, for every task that generates text (translate, caption).

Scores are sacrebleu's defaults (13a tokenization, mixed case, exponential smoothing), on
detokenized hypotheses against raw references, so a number here is comparable with published
sacrebleu numbers and its signature says exactly how it was computed.

API (both functions take plain strings; nothing here knows of models or vocabularies):

    corpus_bleu(hypotheses, references) -> Bleu(score, signature)
        hypotheses:  one detokenized string per segment
        references:  per segment, one reference string or a list of reference strings;
                     segments may have different numbers of references (captions)
        score:       corpus BLEU in [0, 100]
        signature:   sacrebleu's signature, e.g. "nrefs:1|case:mixed|eff:no|tok:13a|..."

    bleu_signature(references_per_segment=1) -> str
        the signature corpus_bleu will report, before anything is scored (for Metric)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sacrebleu.metrics import BLEU


@dataclass(frozen=True)
class Bleu:
    score: float  # corpus BLEU, 0 to 100
    signature: str  # sacrebleu's description of how it was computed


def corpus_bleu(hypotheses: Sequence[str],
                references: Sequence[str | Sequence[str]]) -> Bleu:
    """Corpus BLEU of `hypotheses` against per-segment `references` (see the module doc)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference sets")
    per_segment = [[refs] if isinstance(refs, str) else list(refs) for refs in references]
    if any(len(refs) == 0 for refs in per_segment):
        raise ValueError("every segment needs at least one reference")
    # sacrebleu wants reference streams (stream k holds every segment's k-th reference);
    # a segment with fewer references fills the rest with None, which sacrebleu skips.
    streams = [[refs[k] if k < len(refs) else None for refs in per_segment]
               for k in range(max(len(refs) for refs in per_segment))] if per_segment else [[]]
    metric = BLEU()
    score = metric.corpus_score(list(hypotheses), streams)
    return Bleu(score=float(score.score), signature=str(metric.get_signature()))


def bleu_signature(references_per_segment: int = 1) -> str:
    """The signature `corpus_bleu` reports for that many references per segment ("var" when
    segments differ: pass 0), computed on a one-segment corpus."""
    if references_per_segment <= 0:
        return corpus_bleu(["a", "a"], [["a"], ["a", "a"]]).signature
    return corpus_bleu(["a"], [["a"] * references_per_segment]).signature
