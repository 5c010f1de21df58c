"""Sentence pairs as padded, length-bucketed batches of exactly `batch_size` pairs.

Every training batch holds the same number of pairs, because the CuPy kernels and the `fine`
method are built for one fixed N (a multiple of 64 in the paper's setting). Each epoch:

    pairs      0 1 2 3 4 5 6 7 8 9 10          (11 pairs, batch_size 4)
    permute    7 2 9 0 4 10 1 5 3 6 8          (torch generator seeded with seed + epoch)
    drop tail  7 2 9 0 4 10 1 5                (11 % 4 = 3 random pairs sit this epoch out)
    sort by (source length, target length), stably, then cut:  [..4..] [..4..]
    shuffle the batch order with the same generator

so each batch has sentences of similar length (little padding), batches differ from epoch to
epoch, and an epoch's order is a function of (seed, epoch) alone: a resumed run rebuilds it.

Padded tensors are time-major (T, N), like the LSTM's input; PAD (0) fills past each length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from sparsetrain.tasks._subword import BOS, EOS, PAD


@dataclass(frozen=True)
class PairBatch:
    source: torch.Tensor  # (S, N) source ids + EOS, PAD past each length
    source_lengths: torch.Tensor  # (N,)
    decoder_input: torch.Tensor  # (T, N) BOS + target ids, PAD past each length
    target: torch.Tensor  # (T, N) target ids + EOS, PAD past each length


def padded(sequences: Sequence[Sequence[int]], prefix: Sequence[int] = (),
           suffix: Sequence[int] = (), fill: int = PAD) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, longest) ids of prefix + sequence + suffix, `fill` past each, and their lengths."""
    lengths = torch.tensor([len(prefix) + len(s) + len(suffix) for s in sequences])
    table = torch.full((len(sequences), int(lengths.max()) if len(sequences) else 0), fill,
                       dtype=torch.long)
    for row, sequence in enumerate(sequences):
        table[row, :lengths[row]] = torch.tensor([*prefix, *sequence, *suffix],
                                                 dtype=torch.long)
    return table, lengths


class PairBatches:
    """All training pairs, padded once, on the device; `batch(rows)` cuts one batch."""

    def __init__(self, sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]],
                 device: torch.device) -> None:
        # Sources end in EOS too: it marks the end for the encoder and no source is empty.
        self.sources, self.source_lengths = (
            t.to(device) for t in padded(sources, suffix=(EOS,)))
        self.decoder_inputs, self.target_lengths = (
            t.to(device) for t in padded(targets, prefix=(BOS,)))
        self.targets = padded(targets, suffix=(EOS,))[0].to(device)
        self.count = len(sources)

    def epoch_order(self, batch_size: int, seed: int) -> list[torch.Tensor]:
        """The pair indices of each batch of one epoch (see the module doc)."""
        generator = torch.Generator().manual_seed(seed)
        kept = torch.randperm(self.count, generator=generator)
        kept = kept[:self.count - self.count % batch_size]
        source_lengths = self.source_lengths.cpu()[kept]
        target_lengths = self.target_lengths.cpu()[kept]
        order = target_lengths.argsort(stable=True)  # then by source: ties keep target order
        order = order[source_lengths[order].argsort(stable=True)]
        batches = list(kept[order].view(-1, batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=generator)]

    def batch(self, rows: torch.Tensor) -> PairBatch:
        rows = rows.to(self.sources.device)
        source_lengths = self.source_lengths[rows]
        target_lengths = self.target_lengths[rows]
        source_width, target_width = int(source_lengths.max()), int(target_lengths.max())
        return PairBatch(
            source=self.sources[rows, :source_width].t().contiguous(),
            source_lengths=source_lengths,
            decoder_input=self.decoder_inputs[rows, :target_width].t().contiguous(),
            target=self.targets[rows, :target_width].t().contiguous())
