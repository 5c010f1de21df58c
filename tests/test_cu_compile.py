"""Every .cu kernel source compiles for Hopper with nvcc, as NVRTC will see it (CPU only)."""

import shutil
import subprocess

import pytest

from sparsetrain.kernels import _loader

NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("source", _loader.source_files(), ids=lambda p: p.name)
def test_kernel_source_compiles_for_sm90(source, tmp_path):
    unit = tmp_path / source.name
    unit.write_text(_loader.source_text(source.stem))
    result = subprocess.run(
        [NVCC, "-arch=sm_90", "-std=c++17", "-c", str(unit), "-o", str(tmp_path / "unit.o")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_source_defines_an_entry_per_dtype():
    for source in _loader.source_files():
        text = source.read_text()
        for dtype in _loader.DTYPE_NAMES.values():
            assert f"_{dtype}" in text, f"{source.name} has no {dtype} entry"


def test_compiled_text_points_lines_back_into_the_cu_file():
    source = _loader.source_files()[0]
    text = _loader.source_text(source.stem)
    assert f'#line 1 "{source}"' in text
    assert f'#line 1 "{_loader.COMMON_HEADER}"' in text
