"""`caption`: Show and Tell (Vinyals et al. 2015) on cached CNN image features, BLEU-4.

Data: see `sparsetrain.tasks._captions` for the folder layout (features*.npz,
captions*.json[.gz], splits.json); default folder `coco_val2017_subset_caption`. Vocabulary:
train caption words seen 5 times or more, or the `data.vocab_size` most frequent (specials
included), plus <pad>, <eos>, <unk>.

Model: the image feature, projected to the embedding width, is the first LSTM input (t = -1);
then the caption's word embeddings (teacher forcing); each output predicts the next word, the
last one <eos>. Dropout on the inputs, between layers and before the softmax.

    input   image  a    dog   runs
    target  a      dog  runs  <eos>

Training: one epoch shows every train caption once (a random `count % batch_size` sit each
epoch out), in batches of exactly `train.batch_size` captions of similar length, in an order
fixed by `seed + epoch`. The loss is the mean cross-entropy over real (not padded) targets.

Metric: corpus BLEU-4 (sacrebleu, `sparsetrain.tasks._bleu`) of one beam-search caption per
image against all of that image's reference captions. Hypotheses and references are both
tokenized as above (lowercased, punctuation dropped) and joined by spaces before scoring.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sparsetrain.data.locate import data_dir
from sparsetrain.errors import ConfigError
from sparsetrain.tasks import register_task
from sparsetrain.tasks._beam import beam_search
from sparsetrain.tasks._bleu import bleu_signature, corpus_bleu
from sparsetrain.tasks._captions import EOS, PAD, Split, build_vocab, epoch_batches, load, \
    padded_captions
from sparsetrain.tasks.base import Metric, Step, Task
from sparsetrain.tasks.lm import WordLSTM

FOLDER = "coco_val2017_subset_caption"

State = tuple[torch.Tensor, torch.Tensor]


class ShowAndTell(WordLSTM):
    """`lm`'s embedding, LSTM stack and softmax, plus a linear image projection that makes
    the first input; all weights U(-init_scale, init_scale). Not a language model: `forward`
    takes the images and their captions."""

    def __init__(self, feature_size: int, vocab_size: int, embedding_size: int,
                 hidden_size: int, num_layers: int, dropout: float, tied: bool,
                 init_scale: float, backend: str) -> None:
        super().__init__(vocab_size, embedding_size, hidden_size, num_layers, dropout, tied,
                         init_scale, backend)
        self.image = nn.Linear(feature_size, embedding_size)
        for parameter in self.image.parameters():
            nn.init.uniform_(parameter, -init_scale, init_scale)

    def forward(self, feats: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """feats (N, F), words (L, N) -> logits (L + 1, N, vocab)."""
        inputs = torch.cat([self.image(feats).unsqueeze(0), self.embedding(words)])
        output, _ = self.lstm(self.drop(inputs))
        return self.decoder(self.drop(output))

    def step(self, inputs: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """One time step for decoding: inputs (N, E) -> log-probs (N, vocab), new state."""
        output, state = self.lstm(inputs.unsqueeze(0), state)
        return torch.log_softmax(self.decoder(output[0]).float(), dim=-1), state


@register_task("caption")
class Caption(Task):
    metric = Metric(name="bleu", lower_is_better=False)
    carry_policy = "only the epoch number (it fixes the epoch's batch order)"

    def build_data(self) -> None:
        folder = data_dir(self.recipe.data.dir, FOLDER)
        data = load(folder)
        splits = data.splits
        self.vocab = build_vocab(splits["train"].captions, self.recipe.data.vocab_size)
        self.words = list(self.vocab)
        self.feats = data.feats.to(self.device, self.dtype)
        rows, words, targets, lengths = padded_captions(splits["train"], self.vocab)
        batch_size = self.recipe.train.batch_size
        if lengths.numel() < batch_size:
            raise ConfigError(f"train.batch_size: {batch_size} is more than the "
                              f"{lengths.numel()} train captions in {folder}")
        self.train_data = tuple(t.to(self.device) for t in (rows, words, targets))
        self.lengths = lengths
        self.eval_splits: dict[str, Split] = {s: splits[s] for s in ("valid", "test")}
        self.references = {split: [[" ".join(c) for c in image] for image in data.captions]
                           for split, data in self.eval_splits.items()}
        counts = {len(image) for refs in self.references.values() for image in refs}
        self.metric = Metric(name="bleu", lower_is_better=False,
                             signature=bleu_signature(counts.pop() if len(counts) == 1 else 0))
        self.batches: torch.Tensor | None = None  # this epoch's, from start_epoch

    @property
    def steps_per_epoch(self) -> int:
        return self.lengths.numel() // self.recipe.train.batch_size

    def build_model(self) -> nn.Module:
        config, train = self.recipe.model, self.recipe.train
        embedding_size = config.embedding_size or config.hidden_size  # tied: equal (rules)
        model = ShowAndTell(self.feats.shape[1], len(self.vocab), embedding_size,
                            config.hidden_size, config.num_layers, train.dropout, config.tied,
                            train.init_scale, self.recipe.backend)
        return model.to(device=self.device, dtype=self.dtype)

    def start_epoch(self, epoch: int) -> None:
        self.batches = epoch_batches(self.lengths, self.recipe.train.batch_size,
                                     self.recipe.seed + epoch).to(self.device)

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The `index`-th batch of the epoch: feats (N, F), words (L, N), targets (L + 1, N),
        trimmed to its longest caption."""
        captions = self.batches[index]
        rows, words, targets = (t[captions] for t in self.train_data)
        longest = int(self.lengths[captions.cpu()].max())
        return (self.feats[rows], words[:, :longest].t().contiguous(),
                targets[:, :longest + 1].t().contiguous())

    def train_step(self, model: nn.Module, index: int) -> Step:
        feats, words, targets = self.batch(index)
        model.train()
        logits = model(feats, words)
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(),
                               ignore_index=-100,
                               label_smoothing=self.recipe.train.label_smoothing)
        return Step(objective=loss, loss=loss.detach(), items=int((targets >= 0).sum()))

    @torch.no_grad()
    def generate(self, model: nn.Module, rows: torch.Tensor) -> list[list[str]]:
        """Beam-search captions (as words) for the images at feature `rows`."""
        model.eval()
        decode = self.recipe.decode
        eos, pad = self.vocab[EOS], self.vocab[PAD]
        captions: list[list[str]] = []

        def step(tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
            # state = (h, c, image): the first step's input is the image (h, c not yet set);
            # later steps take the previous word and carry no image.
            h, c, image = state
            inputs = image if image is not None else model.embedding(tokens)
            log_probs, (h, c) = model.step(inputs, None if h is None else (h, c))
            log_probs[:, pad] = float("-inf")  # never a target, never a word
            return log_probs, (h, c, None)

        def reorder(state: Any, keep: torch.Tensor) -> Any:
            return tuple(None if t is None else t.index_select(-2, keep) for t in state)

        for start in range(0, rows.numel(), self.recipe.eval.batch_size):
            chunk = rows[start:start + self.recipe.eval.batch_size].to(self.device)
            image = model.image(self.feats[chunk])
            # bos is never embedded: the image stands in for it at the first step
            found = beam_search(step, reorder, (None, None, image), chunk.numel(), bos=pad,
                                eos=eos, beam_size=decode.beam_size,
                                max_length=decode.max_length,
                                length_penalty=decode.length_penalty)
            captions.extend([self.words[t] for t in hypothesis.tokens] for hypothesis in found)
        return captions

    def evaluate(self, model: nn.Module, split: str) -> float:
        hypotheses = self.generate(model, self.eval_splits[split].rows)
        return corpus_bleu([" ".join(words) for words in hypotheses],
                           self.references[split]).score

