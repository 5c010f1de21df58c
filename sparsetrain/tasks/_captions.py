"""Caption data: image features, captions and a split, read from one folder and checked.

The folder holds (`coco_val2017_subset_caption` is laid out this way):

    features*.npz        one or more plain numpy archives, each with `image_id` (int, N)
                         and `feats` (float, N x F); rows of all files together, one per image
    captions*.json[.gz]  one or more caption files, each either a mapping
                         {"<image_id>": ["caption", ...]} or COCO format
                         {"annotations": [{"image_id": ..., "caption": ...}, ...]}
    splits.json          {"train": [image ids], "val": [...], "test": [...]} ("valid" may
                         stand for "val"; other keys are ignored)

Every image of the split needs a feature row and at least one caption; captions of other
images are ignored (so the full official COCO caption file may sit beside a few features).

Tokens: the caption lowercased, cut into words of letters and digits (an apostrophe inside a
word stays: "man's"); punctuation separates words and is dropped, as the COCO caption
evaluation's tokenizer drops it.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparsetrain.data.locate import require_files
from sparsetrain.tasks._batches import padded
from sparsetrain.errors import ConfigError

FEATURES, CAPTIONS, SPLITS = "features*.npz", "captions*.json[.gz]", "splits.json"
SPLIT_KEYS = {"train": ("train",), "valid": ("val", "valid"), "test": ("test",)}
PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
SPECIALS = (PAD, EOS, UNK)  # ids 0, 1, 2
MIN_COUNT = 5  # default vocabulary: train words seen at least this often (Show and Tell)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def tokenize(caption: str) -> list[str]:
    """Lowercased words; punctuation dropped (see the module doc)."""
    return _WORD.findall(caption.lower())


@dataclass(frozen=True)
class Split:
    rows: torch.Tensor               # feature row of each image, (images,)
    captions: list[list[list[str]]]  # per image, its captions as token lists


@dataclass(frozen=True)
class CaptionData:
    feats: torch.Tensor              # (images, F) float32, every image with a feature
    splits: dict[str, Split]         # train, valid, test


def _glob(folder: Path, patterns: tuple[str, ...], shown: str) -> list[Path]:
    found = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    if not found:
        # require_files words the error: where it looked, what is missing, how to fill it
        require_files(folder, [shown])
    return found


def read_features(paths: list[Path]) -> tuple[dict[int, int], np.ndarray]:
    """image id -> row, and the rows (float32) of all feature files together."""
    rows: dict[int, int] = {}
    blocks, where = [], {}
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as archive:
                names = set(archive.files)
                ids, feats = archive.get("image_id"), archive.get("feats")
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path}: not a readable .npz ({error})") from None
        if ids is None or feats is None:
            raise ConfigError(f"{path}: needs arrays image_id and feats, has "
                              f"{', '.join(sorted(names)) or 'none'}")
        if feats.ndim != 2 or ids.shape != (feats.shape[0],) or ids.dtype.kind not in "iu":
            raise ConfigError(f"{path}: image_id must be N integers and feats N x F, got "
                              f"{ids.dtype}{list(ids.shape)} and {list(feats.shape)}")
        if blocks and feats.shape[1] != blocks[0].shape[1]:
            raise ConfigError(f"{path}: {feats.shape[1]}-d features, but {paths[0]} has "
                              f"{blocks[0].shape[1]}-d")
        for image_id in ids.tolist():
            if image_id in rows:
                raise ConfigError(f"{path}: image {image_id} already has a feature in "
                                  f"{where[image_id].name}")
            rows[image_id], where[image_id] = len(rows), path
        blocks.append(feats.astype(np.float32))
    return rows, np.concatenate(blocks)


def _load_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        return json.loads(raw)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not readable JSON ({error})") from None


def read_captions(paths: list[Path]) -> dict[int, list[str]]:
    """image id -> its captions, from id mappings and COCO-format files alike."""
    captions: dict[int, list[str]] = {}
    for path in paths:
        data = _load_json(path)
        try:
            if isinstance(data, dict) and "annotations" in data:
                pairs = [(int(a["image_id"]), a["caption"]) for a in data["annotations"]]
            else:
                pairs = [(int(key), text) for key, texts in data.items() for text in texts]
            if not all(isinstance(text, str) for _, text in pairs):
                raise TypeError("a caption is not text")
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"{path}: neither {{\"<image_id>\": [captions]}} nor COCO "
                              f"format {{\"annotations\": [{{image_id, caption}}]}} ({error})"
                              ) from None
        for image_id, text in pairs:
            captions.setdefault(image_id, []).append(text)
    return captions


def read_splits(path: Path) -> dict[str, list[int]]:
    data = _load_json(path)
    splits = {}
    for split, keys in SPLIT_KEYS.items():
        key = next((k for k in keys if isinstance(data, dict) and k in data), None)
        if key is None or not isinstance(data[key], list) or not data[key]:
            raise ConfigError(f"{path}: needs a non-empty list of image ids under "
                              f"{' or '.join(repr(k) for k in keys)}")
        try:
            splits[split] = [int(image_id) for image_id in data[key]]
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: {key!r} must list integer image ids") from None
    return splits


def load(folder: Path) -> CaptionData:
    """The folder's features, captions and split, checked against each other."""
    feature_files = _glob(folder, ("features*.npz",), FEATURES)
    caption_files = _glob(folder, ("captions*.json", "captions*.json.gz"), CAPTIONS)
    splits_file = require_files(folder, [SPLITS])[0]
    rows, feats = read_features(feature_files)
    captions = read_captions(caption_files)
    splits: dict[str, Split] = {}
    for split, ids in read_splits(splits_file).items():
        for what, table in (("feature", rows), ("caption", captions)):
            missing = [image_id for image_id in ids if image_id not in table]
            if missing:
                raise ConfigError(
                    f"{splits_file}: {len(missing)} of the {len(ids)} {split} images have no "
                    f"{what} in {FEATURES if what == 'feature' else CAPTIONS} of {folder} "
                    f"(first: image {missing[0]})")
        splits[split] = Split(rows=torch.tensor([rows[i] for i in ids], dtype=torch.long),
                              captions=[[tokenize(text) for text in captions[i]] for i in ids])
    return CaptionData(feats=torch.from_numpy(feats), splits=splits)


def build_vocab(captions: list[list[list[str]]], size: int | None) -> dict[str, int]:
    """<pad>, <eos>, <unk>, then the train words by count (ties alphabetical): the
    `size` - 3 most frequent when `size` is set, else those seen MIN_COUNT times or more."""
    counts = Counter(word for image in captions for caption in image for word in caption)
    ranked = sorted(counts, key=lambda word: (-counts[word], word))
    if size is not None:
        if size <= len(SPECIALS):
            raise ConfigError(f"data.vocab_size: must be more than the {len(SPECIALS)} "
                              f"special tokens ({', '.join(SPECIALS)}), got {size}")
        words = ranked[:size - len(SPECIALS)]
    else:
        words = [word for word in ranked if counts[word] >= MIN_COUNT]
    return {word: index for index, word in enumerate((*SPECIALS, *words))}


def padded_captions(split: Split, vocab: dict[str, int]
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every caption of the split as one row: (image row, words, targets, length).

        caption "a dog runs" (length 3), longest caption L
            words    a    dog  runs <pad> ...   (L columns)
            targets  a    dog  runs <eos> -100 ... (L + 1 columns; -100: not scored)

    The model sees the image first, then the words; the output after the image predicts the
    first word, and the output after the last word predicts <eos>.
    """
    unk = vocab[UNK]
    encoded = [(row, [vocab.get(word, unk) for word in caption])
               for row, image in zip(split.rows.tolist(), split.captions) for caption in image]
    captions = [ids for _, ids in encoded]
    words, lengths = padded(captions, fill=vocab[PAD])
    targets, _ = padded(captions, suffix=(vocab[EOS],), fill=-100)
    return torch.tensor([row for row, _ in encoded], dtype=torch.long), words, targets, lengths


def epoch_batches(lengths: torch.Tensor, batch_size: int, seed: int) -> torch.Tensor:
    """(batches, batch_size) caption indices for one epoch: every batch full, captions of
    similar length together, batch order shuffled; the same `seed` gives the same batches.

    A random `len % batch_size` captions sit the epoch out (others each epoch); the rest are
    sorted by length (ties in random order) and cut into batches.
    """
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(lengths.numel(), generator=generator)
    order = order[lengths.numel() % batch_size:]
    order = order[torch.sort(lengths[order], stable=True).indices]
    batches = order.view(-1, batch_size)
    return batches[torch.randperm(batches.shape[0], generator=generator)]
