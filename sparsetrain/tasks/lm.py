"""`lm`: word-level language modelling on Penn Treebank (the paper, after Zaremba et al.).

Data: `ptb.{train,valid,test}.txt` in the data folder, vocabulary from train. Model:
embedding -> dropout -> stacked `sparsetrain.nn.LSTM` (dropout between layers) -> dropout ->
linear softmax, optionally tied to the embedding. The hidden state is carried from batch to
batch within an epoch (detached) and reset at each epoch start. The metric is perplexity:
exp of the mean per-token NLL over the whole split.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

import sparsetrain.nn
from sparsetrain.data.locate import data_dir, require_files
from sparsetrain.errors import ConfigError
from sparsetrain.tasks import register_task
from sparsetrain.tasks._corpus import build_vocab, columns, encode, read_words
from sparsetrain.tasks.base import Metric, Step, Task

SPLITS = ("train", "valid", "test")
FILES = tuple(f"ptb.{split}.txt" for split in SPLITS)

State = tuple[torch.Tensor, torch.Tensor]


class WordLSTM(nn.Module):
    """Embedding, dropout, LSTM stack, dropout, softmax layer; all weights U(-s, s)."""

    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int,
                 num_layers: int, dropout: float, tied: bool, init_scale: float,
                 backend: str) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.drop = nn.Dropout(dropout)
        self.lstm = sparsetrain.nn.LSTM(embedding_size, hidden_size, num_layers=num_layers,
                                        dropout=dropout, backend=backend)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tied:
            self.decoder.weight = self.embedding.weight
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -init_scale, init_scale)

    def forward(self, tokens: torch.Tensor, state: State | None = None
                ) -> tuple[torch.Tensor, State]:
        """tokens (T, N) -> logits (T, N, vocab) and the final (h, c)."""
        output, state = self.lstm(self.drop(self.embedding(tokens)), state)
        return self.decoder(self.drop(output)), state


@register_task("lm")
class LanguageModel(Task):
    metric = Metric(name="perplexity", lower_is_better=True)
    carry_policy = "hidden state carried across batches (detached), reset at each epoch start"

    def build_data(self) -> None:
        folder = data_dir(self.recipe.data.dir, "ptb")
        require_files(folder, FILES)
        train_words = read_words(folder / FILES[0])
        self.vocab = build_vocab(train_words)
        streams = {"train": encode(train_words, self.vocab, folder / FILES[0])}
        for split, name in zip(SPLITS[1:], FILES[1:]):
            streams[split] = encode(read_words(folder / name), self.vocab, folder / name)
        train = self.recipe.train
        inputs, targets = columns(streams["train"], train.batch_size, pad=False)
        self._steps = inputs.shape[0] // train.bptt
        if self._steps == 0:
            raise ConfigError(
                f"{folder / FILES[0]}: {streams['train'].numel()} tokens are too few for one "
                f"step of train.batch_size {train.batch_size} x train.bptt {train.bptt}")
        self.train_data = (inputs.to(self.device), targets.to(self.device))
        self.eval_data = {
            split: tuple(t.to(self.device) for t in
                         columns(streams[split], self.recipe.eval.batch_size, pad=True))
            for split in SPLITS[1:]}
        self.hidden: State | None = None

    @property
    def steps_per_epoch(self) -> int:
        return self._steps

    def build_model(self) -> nn.Module:
        model_config, train = self.recipe.model, self.recipe.train
        embedding_size = model_config.embedding_size or model_config.hidden_size
        if model_config.tied and embedding_size != model_config.hidden_size:
            raise ConfigError(
                f"model.tied needs model.embedding_size ({embedding_size}) equal to "
                f"model.hidden_size ({model_config.hidden_size})")
        model = WordLSTM(len(self.vocab), embedding_size, model_config.hidden_size,
                         model_config.num_layers, train.dropout, model_config.tied,
                         train.init_scale, self.recipe.backend)
        return model.to(device=self.device, dtype=self.dtype)

    def start_epoch(self, epoch: int) -> None:
        self.hidden = None

    def train_step(self, model: nn.Module, index: int) -> Step:
        bptt = self.recipe.train.bptt
        inputs, targets = (t[index * bptt:(index + 1) * bptt] for t in self.train_data)
        model.train()
        logits, state = model(inputs, self.hidden)
        self.hidden = (state[0].detach(), state[1].detach())
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        # Zaremba et al.'s cost sums over the BPTT steps and averages over the batch; lr 1 and
        # clip 5 are tuned for that scale, so back-propagate loss * bptt, log the per-token loss.
        return Step(objective=loss * bptt, loss=loss.detach(), items=targets.numel())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> float:
        inputs, targets = self.eval_data[split]
        bptt = self.recipe.train.bptt
        model.eval()
        state: State | None = None
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for start in range(0, inputs.shape[0], bptt):
            logits, state = model(inputs[start:start + bptt], state)
            total += F.cross_entropy(logits.float().flatten(0, 1),
                                     targets[start:start + bptt].flatten(),
                                     ignore_index=-1, reduction="sum").double()
        mean = total.item() / int((targets >= 0).sum())
        return math.exp(mean) if mean < 700 else math.inf  # math.exp overflows past ~709

    def carried_state(self) -> Any:
        return None if self.hidden is None else tuple(t.cpu() for t in self.hidden)

    def restore_carried_state(self, state: Any) -> None:
        self.hidden = None if state is None else tuple(t.to(self.device) for t in state)
