"""Batched beam search over any model that scores the next token given a state.

Evaluating a generation task means decoding a whole split (1,000 sentences, beam 5) every
epoch, so the search runs all sentences at once: each sentence's beams are rows of one batch
(row = sentence * beam_size + beam), the model takes one step for every row in one call, and
sentences that are done leave the batch. Nothing here knows of LSTMs or vocabularies; the
model is two functions:

    step(tokens, state) -> (log_probs, state)
        tokens:    LongTensor (rows,), the last token of each row (`bos` at the first step)
        log_probs: (rows, vocab) log-probabilities of the next token
    reorder(state, rows) -> state
        keep the given rows of the state, in that order (rows: LongTensor, may repeat a
        row); e.g. index_select on the batch dimension of every tensor in the state

API:

    beam_search(step, reorder, state, batch_size, *, bos, eos, beam_size, max_length,
                length_penalty=0.0) -> list[Hypothesis]
        state:     the model's state for `batch_size` sentences (one row each); the search
                   expands it to batch_size * beam_size rows with `reorder`
        returns:   per sentence, in input order, the best finished hypothesis:
    Hypothesis(tokens, log_prob, score)
        tokens:    the generated ids, without bos and eos (at most max_length of them)
        log_prob:  sum of the log-probabilities of the tokens and of the closing eos
        score:     log_prob / ((5 + length) / 6) ** length_penalty (Wu et al. 2016), where
                   length = len(tokens) + 1 (eos counts); the search ranks finished
                   hypotheses by it

The search: each step extends every live beam by every token, keeps the 2 * beam_size best
candidates per sentence; of those, the ones ending in eos among the best beam_size are
finished hypotheses, and the best beam_size not ending in eos live on. A sentence is done
when it has beam_size finished hypotheses (fairseq's stopping rule); after max_length tokens
the next step allows only eos, so every sentence finishes. beam_size 1 is greedy decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

Step = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]
Reorder = Callable[[Any, torch.Tensor], Any]


@dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[int, ...]
    log_prob: float
    score: float


def length_normalized(log_prob: torch.Tensor | float, length: int,
                      length_penalty: float) -> torch.Tensor | float:
    """GNMT's length normalization: log_prob / ((5 + length) / 6) ** length_penalty."""
    return log_prob / ((5 + length) / 6) ** length_penalty


def beam_search(step: Step, reorder: Reorder, state: Any, batch_size: int, *, bos: int,
                eos: int, beam_size: int, max_length: int,
                length_penalty: float = 0.0) -> list[Hypothesis]:
    """The best hypothesis per sentence (see the module doc for the contract)."""
    beams, device = beam_size, _device_of(state)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
    sentences = torch.arange(batch_size, device=device)  # input index of each live sentence
    state = reorder(state, sentences.repeat_interleave(beams))
    # Only beam 0 is live at first: the others start at -inf so the first step does not pick
    # the same token beam_size times.
    scores = torch.full((batch_size, beams), float("-inf"), device=device)
    scores[:, 0] = 0.0
    history = torch.empty(batch_size * beams, 0, dtype=torch.long, device=device)
    tokens = torch.full((batch_size * beams,), bos, dtype=torch.long, device=device)
    for position in range(max_length + 1):
        log_probs, state = step(tokens, state)
        log_probs = log_probs.float()
        vocab = log_probs.shape[-1]
        if position == max_length:  # out of room: only eos may follow
            forced = torch.full_like(log_probs, float("-inf"))
            forced[:, eos] = log_probs[:, eos]
            log_probs = forced
        live = sentences.numel()
        candidates = (scores.unsqueeze(2) + log_probs.view(live, beams, vocab)).view(live, -1)
        top_scores, top_index = candidates.topk(min(2 * beams, beams * vocab), dim=1)
        origin, token = top_index // vocab, top_index % vocab
        parent_rows = origin + torch.arange(live, device=device).unsqueeze(1) * beams
        ending = token == eos
        ranks = torch.arange(top_scores.shape[1], device=device)
        done_now = ending & (ranks < beams) & torch.isfinite(top_scores)
        _collect(finished, sentences, done_now, top_scores, parent_rows, history,
                 position + 1, length_penalty, beams)
        # The best `beams` candidates not ending in eos live on (at most `beams` of the
        # 2 * beams end in eos: one per parent beam).
        order = (ranks + ending * top_scores.shape[1]).argsort(dim=1)[:, :beams]
        scores = top_scores.gather(1, order)
        rows = parent_rows.gather(1, order)
        next_tokens = token.gather(1, order)
        open_sentences = torch.tensor([len(finished[s]) < beams for s in sentences.tolist()],
                                      device=device)
        if not bool(open_sentences.any()):
            break
        sentences, scores = sentences[open_sentences], scores[open_sentences]
        rows, next_tokens = rows[open_sentences].flatten(), next_tokens[open_sentences].flatten()
        history = torch.cat([history[rows], next_tokens.unsqueeze(1)], dim=1)
        state = reorder(state, rows)
        tokens = next_tokens
    return [max(hypotheses, key=lambda h: h.score) for hypotheses in finished]


def _collect(finished: list[list[Hypothesis]], sentences: torch.Tensor, done_now: torch.Tensor,
             top_scores: torch.Tensor, parent_rows: torch.Tensor, history: torch.Tensor,
             length: int, length_penalty: float, beams: int) -> None:
    """Record the candidates that end in eos this step as finished hypotheses, up to `beams`
    per sentence (candidates come best first, so the best are kept)."""
    live_index, rank = done_now.nonzero(as_tuple=True)
    if live_index.numel() == 0:
        return
    prefixes = history[parent_rows[live_index, rank]].tolist()
    log_probs = top_scores[live_index, rank].tolist()
    for sentence, prefix, log_prob in zip(sentences[live_index].tolist(), prefixes, log_probs):
        if len(finished[sentence]) < beams:
            finished[sentence].append(Hypothesis(
                tokens=tuple(prefix), log_prob=log_prob,
                score=length_normalized(log_prob, length, length_penalty)))


def _device_of(state: Any) -> torch.device:
    """The device of the first tensor in a (nested tuple, list or dict) state; else cpu."""
    pending = [state]
    while pending:
        item = pending.pop(0)
        if isinstance(item, torch.Tensor):
            return item.device
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (tuple, list)):
            pending.extend(item)
    return torch.device("cpu")
