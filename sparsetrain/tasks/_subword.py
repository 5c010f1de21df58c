"""Subword pieces for translation: one joint sentencepiece BPE model over both languages.

Why this shape: a subword vocabulary keeps rare words translatable with a small softmax, and
a joint model over source and target is one file to train and cache. The model is trained on
the training split when a run reads its data, so it must be cheap and identical every time:
BPE on one thread over every training sentence in file order trains in well under a second on
Multi30k and gives the same bytes each time (more threads do not). The trained model is cached
under `$SPARSETRAIN_CACHE` (default `~/.cache/sparsetrain`), keyed by the training files'
contents, the vocabulary size and the sentencepiece version, and written atomically, so seven
sweep runs starting together at worst train the same model seven times and never read half a
file.

Normalization is off (identity) and byte fallback is on, so decoding the pieces of any text
gives the text back (whitespace runs aside, which `read_sentences` collapses) and characters
never seen in training become byte pieces, not `<unk>`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import sentencepiece

from sparsetrain.errors import ConfigError
from sparsetrain.files import write_atomically

CACHE_ENV = "SPARSETRAIN_CACHE"
PAD, UNK, BOS, EOS = 0, 1, 2, 3
TRAINER_SETTINGS = dict(
    model_type="bpe", character_coverage=1.0, byte_fallback=True,
    normalization_rule_name="identity", pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
    num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
    hard_vocab_limit=False,  # a tiny corpus (tests) may not hold vocab_size pieces
    minloglevel=2)


def read_sentences(path: Path) -> list[str]:
    """The lines of a gzipped UTF-8 text file, whitespace runs collapsed to one space."""
    try:
        with gzip.open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except (OSError, EOFError) as error:
        raise ConfigError(f"{path}: not a readable gzip file ({error}); the file is corrupt, "
                          "fetch it again") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {error.start}); "
                          "the file is corrupt, fetch it again") from None
    sentences = [" ".join(line.split()) for line in text.splitlines()]
    if not any(sentences):
        raise ConfigError(f"{path}: holds no sentences; the file is empty or corrupt")
    return sentences


@dataclass(frozen=True)
class Subwords:
    """A trained sentencepiece model: text <-> ids, with PAD, BOS, EOS ids fixed above."""

    model: bytes

    def __post_init__(self) -> None:
        processor = sentencepiece.SentencePieceProcessor(model_proto=self.model)
        object.__setattr__(self, "_processor", processor)

    @property
    def size(self) -> int:
        return self._processor.get_piece_size()

    def encode(self, sentences: Sequence[str]) -> list[list[int]]:
        return self._processor.encode(list(sentences))

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self._processor.decode([list(sentence) for sentence in ids])


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else \
        Path.home() / ".cache" / "sparsetrain"


def subwords_for(sentences: Sequence[str], vocab_size: int) -> Subwords:
    """The model trained on `sentences`, from the cache when it is there (keyed by the very
    sentences it learns from, the vocabulary size and the trainer's version and settings)."""
    key = hashlib.sha256("\n".join(sentences).encode("utf-8"))
    key.update(f"{vocab_size}|{sentencepiece.__version__}|{sorted(TRAINER_SETTINGS.items())}"
               .encode())
    cached = cache_dir() / "sentencepiece" / f"{key.hexdigest()[:32]}.model"
    if cached.is_file():
        return Subwords(cached.read_bytes())
    model = train_subwords(sentences, vocab_size)
    try:
        write_atomically(cached, lambda handle: handle.write(model.model))
    except OSError:
        pass  # a read-only cache only costs the next run the same second of training
    return model


def train_subwords(sentences: Sequence[str], vocab_size: int) -> Subwords:
    """Train a BPE model on `sentences` in order (deterministic: one thread, no sampling)."""
    writer = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=writer, vocab_size=vocab_size,
            **TRAINER_SETTINGS)
    except RuntimeError as error:
        raise ConfigError(f"data.vocab_size: sentencepiece could not train {vocab_size} "
                          f"pieces on the training split: {error}") from None
    return Subwords(writer.getvalue())

