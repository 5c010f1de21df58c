"""The paper's translation model: a 2-layer LSTM encoder (the first layer bidirectional), a
4-layer LSTM decoder, and attention; every LSTM a `sparsetrain.nn.LSTM`.

Attention sits on top of the decoder stack (Luong et al. 2015, "general" score) and is not fed
back into the decoder's input, so in training each LSTM runs over the whole sequence in one
call (teacher forcing), which is what the sparse backward kernels are built for:

    source ─ embed ─► forward LSTM ─┐
                   └► backward LSTM ┴ concat (2H) ─► encoder LSTMs ─► memory m_s (S, N, H)
    target ─ embed ─► decoder LSTMs (4) ─► h_t ─► a_ts = softmax_s(h_t . W_a m_s), masked
                                                  c_t = sum_s a_ts m_s
                                                  o_t = tanh(W_c [c_t; h_t]) ─► softmax

The backward direction reads each sentence reversed within its own length, so padding never
precedes a sentence's real tokens in either direction. The decoder starts from
tanh(W_b mean_s m_s) (h and c, every layer): without input feeding, this is how the decoder
stack itself learns what the source says. Padded source positions get attention weight
exactly 0.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

import sparsetrain.nn

State = dict[str, torch.Tensor]


def reversed_within_lengths(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(width, N) time indices that reverse each column's first `length` steps and leave its
    padding in place; applying it twice is the identity."""
    steps = torch.arange(width, device=lengths.device).unsqueeze(1)
    return torch.where(steps < lengths, lengths - 1 - steps, steps)


def source_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(N, width) True at real source positions."""
    return torch.arange(width, device=lengths.device) < lengths.unsqueeze(1)


class AttentionSeq2Seq(nn.Module):
    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int,
                 encoder_layers: int, decoder_layers: int, dropout: float,
                 backend: str) -> None:
        super().__init__()
        self.decoder_layers, self.hidden_size = decoder_layers, hidden_size
        self.source_embedding = nn.Embedding(vocab_size, embedding_size)
        self.target_embedding = nn.Embedding(vocab_size, embedding_size)
        self.drop = nn.Dropout(dropout)
        self.encoder_forward = sparsetrain.nn.LSTM(embedding_size, hidden_size, backend=backend)
        self.encoder_backward = sparsetrain.nn.LSTM(embedding_size, hidden_size,
                                                    backend=backend)
        self.encoder_upper = sparsetrain.nn.LSTM(
            2 * hidden_size, hidden_size, num_layers=encoder_layers - 1, dropout=dropout,
            backend=backend) if encoder_layers > 1 else None
        memory_size = hidden_size if encoder_layers > 1 else 2 * hidden_size
        self.bridge = nn.Linear(memory_size, 2 * hidden_size)
        self.decoder = sparsetrain.nn.LSTM(embedding_size, hidden_size,
                                           num_layers=decoder_layers, dropout=dropout,
                                           backend=backend)
        self.attention = nn.Linear(memory_size, hidden_size, bias=False)
        self.combine = nn.Linear(memory_size + hidden_size, hidden_size)
        self.output = nn.Linear(hidden_size, vocab_size)

    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> State:
        """source (S, N) -> the decoder's starting state and what attention reads."""
        width = source.shape[0]
        embedded = self.drop(self.source_embedding(source))
        forward, _ = self.encoder_forward(embedded)
        reverse = reversed_within_lengths(lengths, width).unsqueeze(2)
        backward, _ = self.encoder_backward(
            embedded.gather(0, reverse.expand_as(embedded)))
        backward = backward.gather(0, reverse.expand_as(backward))
        memory = torch.cat([forward, backward], dim=2)
        if self.encoder_upper is not None:
            memory, _ = self.encoder_upper(self.drop(memory))
        mask = source_mask(lengths, width)
        mean = (memory * mask.t().unsqueeze(2)).sum(0) / lengths.unsqueeze(1).to(memory.dtype)
        start = torch.tanh(self.bridge(mean)).unsqueeze(0).expand(self.decoder_layers, -1, -1)
        h, c = start.chunk(2, dim=2)
        return {"h": h.contiguous(), "c": c.contiguous(), "memory": memory,
                "keys": self.attention(memory), "mask": mask}

    def attend(self, outputs: torch.Tensor, state: State) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder outputs (T, N, H) -> attentional outputs (T, N, H) and weights (N, T, S)."""
        scores = torch.einsum("tnh,snh->nts", outputs, state["keys"])
        scores = scores.masked_fill(~state["mask"].unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores.float(), dim=2).to(outputs.dtype)
        context = torch.einsum("nts,snm->tnm", weights, state["memory"])
        return torch.tanh(self.combine(torch.cat([context, outputs], dim=2))), weights

    def forward(self, source: torch.Tensor, lengths: torch.Tensor,
                decoder_input: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (T, N, vocab) of the next target token at every position."""
        state = self.encode(source, lengths)
        outputs, _ = self.decoder(self.drop(self.target_embedding(decoder_input)),
                                  (state["h"], state["c"]))
        attentional, _ = self.attend(outputs, state)
        return self.output(self.drop(attentional))

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One decoding step for beam search: tokens (rows,) -> log-probs (rows, vocab)."""
        outputs, (h, c) = self.decoder(self.target_embedding(tokens).unsqueeze(0),
                                       (state["h"], state["c"]))
        attentional, _ = self.attend(outputs, state)
        log_probs = F.log_softmax(self.output(attentional[0]).float(), dim=1)
        return log_probs, {**state, "h": h, "c": c}

    @staticmethod
    def reorder(state: State, rows: torch.Tensor) -> State:
        """Keep `rows` of the batch (beam search's reorder)."""
        batch_dimension = {"h": 1, "c": 1, "memory": 1, "keys": 1, "mask": 0}
        return {name: value.index_select(batch_dimension[name], rows)
                for name, value in state.items()}

    def extra_repr(self) -> Any:
        return f"decoder_layers={self.decoder_layers}, hidden_size={self.hidden_size}"
