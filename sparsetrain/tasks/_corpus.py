"""Word-level corpora in the PTB text format: tokens split on whitespace, `<eos>` per line.

Reading checks what a corrupt file would break (not UTF-8, binary, no words, words unknown to
the training vocabulary) and names the file in the ConfigError.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sparsetrain.errors import ConfigError

EOS = "<eos>"
UNK = "<unk>"


def read_words(path: Path) -> list[str]:
    """Every token of the file in order, with `<eos>` at the end of each line."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {error.start}); "
                          "the file is corrupt, fetch it again") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: contains NUL bytes, not a text corpus; the file is "
                          "corrupt, fetch it again")
    words: list[str] = []
    for line in text.splitlines():
        words.extend(line.split())
        words.append(EOS)
    if all(word == EOS for word in words):
        raise ConfigError(f"{path}: holds no words; the file is empty or corrupt")
    return words


def build_vocab(words: list[str]) -> dict[str, int]:
    """Word -> id in order of first appearance (stable across runs of the same file)."""
    vocab: dict[str, int] = {}
    for word in words:
        if word not in vocab:
            vocab[word] = len(vocab)
    return vocab


def encode(words: list[str], vocab: dict[str, int], path: Path) -> torch.Tensor:
    """Ids of `words`; a word outside the vocabulary maps to `<unk>` when there is one."""
    unk = vocab.get(UNK)
    ids = []
    for position, word in enumerate(words):
        index = vocab.get(word, unk)
        if index is None:
            raise ConfigError(f"{path}: word {word!r} (token {position}) is not in the "
                              f"training vocabulary and the vocabulary has no {UNK}")
        ids.append(index)
    return torch.tensor(ids, dtype=torch.long)


def columns(stream: torch.Tensor, batch_size: int, pad: bool
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a token stream into `batch_size` contiguous columns: inputs and next-token targets.

        stream  a b c d e f g h i j           (L tokens, L-1 predictions)
        batch_size 3, pad=False: C = (L-1)//3 = 3 rows, trailing predictions dropped
            inputs  a d g     targets  b e h
                    b e h              c f i
                    c f i              d g j

    With pad=True, C = ceil((L-1)/batch_size) and the missing targets are -1, so every
    prediction of the split is scored exactly once (the column boundaries included, since a
    target is read from the stream, not from the column).
    """
    predictions = stream.numel() - 1
    rows = -(-predictions // batch_size) if pad else predictions // batch_size
    inputs = torch.zeros(batch_size * rows, dtype=torch.long)
    targets = torch.full((batch_size * rows,), -1, dtype=torch.long)
    used = min(predictions, batch_size * rows)
    inputs[:used] = stream[:used]
    targets[:used] = stream[1:used + 1]
    return inputs.view(batch_size, rows).t().contiguous(), \
        targets.view(batch_size, rows).t().contiguous()
