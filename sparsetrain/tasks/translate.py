"""`translate`: English -> German on Multi30k with the paper's attention LSTM (seed 004, 5.4).

Data: `raw/{train,val,test_2016_flickr}.{en,de}.gz` in the data folder (splits train, valid,
test). Text becomes joint sentencepiece BPE pieces (`data.vocab_size`, default 8000) learned
from the training split and cached (`_subword`). Training batches are exactly
`train.batch_size` pairs, bucketed by length (`_batches`); the model is `_seq2seq`'s. The
metric is sacrebleu corpus BLEU of batched beam-search output (`decode.*`), detokenized by
sentencepiece, against the raw references.
"""

from __future__ import annotations


import torch
from torch import nn
from torch.nn import functional as F

from sparsetrain.data.locate import data_dir
from sparsetrain.data.locate import require_files
from sparsetrain.errors import ConfigError
from sparsetrain.tasks import register_task
from sparsetrain.tasks._batches import PairBatches, padded
from sparsetrain.tasks._beam import beam_search
from sparsetrain.tasks._bleu import bleu_signature, corpus_bleu
from sparsetrain.tasks._seq2seq import AttentionSeq2Seq
from sparsetrain.tasks._subword import BOS, EOS, PAD, read_sentences, subwords_for
from sparsetrain.tasks.base import Metric, Step, Task

SOURCE, TARGET = "en", "de"
SPLIT_FILES = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
DEFAULT_VOCAB_SIZE = 8000


def split_files(split: str) -> tuple[str, str]:
    """The (source, target) file names of a split, relative to the data folder."""
    stem = SPLIT_FILES[split]
    return f"raw/{stem}.{SOURCE}.gz", f"raw/{stem}.{TARGET}.gz"


@register_task("translate")
class Translation(Task):
    metric = Metric(name="bleu", lower_is_better=False)
    carry_policy = "nothing carried but the epoch number: its batch order follows from it"

    def build_data(self) -> None:
        folder = data_dir(self.recipe.data.dir, "multi30k")
        names = [name for split in SPLIT_FILES for name in split_files(split)]
        paths = dict(zip(names, require_files(folder, names)))
        text = {split: [read_sentences(paths[name]) for name in split_files(split)]
                for split in SPLIT_FILES}
        for split, (sources, targets) in text.items():
            if len(sources) != len(targets):
                source_name, target_name = split_files(split)
                raise ConfigError(f"{folder}: {source_name} has {len(sources)} lines but "
                                  f"{target_name} has {len(targets)}; a pair per line is needed")
        train_sources, train_targets = text["train"]
        self.subwords = subwords_for(train_sources + train_targets,
                                     self.recipe.data.vocab_size or DEFAULT_VOCAB_SIZE)
        batch_size = self.recipe.train.batch_size
        if len(train_sources) < batch_size:
            raise ConfigError(f"{paths[split_files('train')[0]]}: {len(train_sources)} pairs "
                              f"are too few for one batch of train.batch_size {batch_size}")
        self.train_pairs = PairBatches(self.subwords.encode(train_sources),
                                       self.subwords.encode(train_targets), self.device)
        self.eval_sources = {split: self.subwords.encode(text[split][0])
                             for split in ("valid", "test")}
        self.references = {split: text[split][1] for split in ("valid", "test")}
        self.metric = Metric(name="bleu", lower_is_better=False, signature=bleu_signature(1))
        self._batches: list = []

    @property
    def steps_per_epoch(self) -> int:
        return self.train_pairs.count // self.recipe.train.batch_size

    def build_model(self) -> nn.Module:
        model_config, train = self.recipe.model, self.recipe.train
        model = AttentionSeq2Seq(
            self.subwords.size, model_config.embedding_size or model_config.hidden_size,
            model_config.hidden_size, model_config.encoder_layers, model_config.num_layers,
            train.dropout, self.recipe.backend)
        for name, parameter in model.named_parameters():
            # Embeddings keep torch's N(0, 1): at U(-0.1, 0.1) the LSTM inputs are so small
            # that training sits at the unigram loss for hundreds of steps.
            if not name.endswith("embedding.weight"):
                nn.init.uniform_(parameter, -train.init_scale, train.init_scale)
        return model.to(device=self.device, dtype=self.dtype)

    def start_epoch(self, epoch: int) -> None:
        self._batches = self.train_pairs.epoch_order(self.recipe.train.batch_size,
                                                     self.recipe.seed + epoch)

    def train_step(self, model: nn.Module, index: int) -> Step:
        batch = self.train_pairs.batch(self._batches[index])
        model.train()
        logits = model(batch.source, batch.source_lengths, batch.decoder_input)
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch.target.flatten(),
                               ignore_index=PAD,
                               label_smoothing=self.recipe.train.label_smoothing)
        return Step(objective=loss, loss=loss.detach(),
                    items=int((batch.target != PAD).sum()))

    @torch.no_grad()
    def translate(self, model: nn.Module, sources: list[list[int]]) -> list[str]:
        """Beam-search translations of `sources` (piece ids), detokenized, in input order.
        Sentences go through in batches of eval.batch_size, shortest first (less padding)."""
        model.eval()
        decode, chunk = self.recipe.decode, self.recipe.eval.batch_size
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
        outputs: list[list[int]] = [[] for _ in sources]
        for start in range(0, len(order), chunk):
            rows = order[start:start + chunk]
            source, lengths = padded([sources[i] for i in rows], suffix=(EOS,))
            state = model.encode(source.t().contiguous().to(self.device), lengths.to(self.device))
            hypotheses = beam_search(
                model.step, model.reorder, state, len(rows), bos=BOS, eos=EOS,
                beam_size=decode.beam_size, max_length=decode.max_length,
                length_penalty=decode.length_penalty)
            for row, hypothesis in zip(rows, hypotheses):
                outputs[row] = list(hypothesis.tokens)
        return self.subwords.decode(outputs)

    def evaluate(self, model: nn.Module, split: str) -> float:
        return corpus_bleu(self.translate(model, self.eval_sources[split]),
                           self.references[split]).score

