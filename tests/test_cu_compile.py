"""Every .cu kernel source compiles for Hopper (sm_90, or sm_90a where the loader asks for it)
with nvcc, as NVRTC will see it, and what the loader hands the driver is laid out as cuda.h
says (CPU only)."""

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
    arch = ("-gencode=arch=compute_90a,code=sm_90a"
            if "-arch=sm_90a" in _loader.MODULE_OPTIONS.get(source.stem, ()) else "-arch=sm_90")
    result = subprocess.run(
        [NVCC, arch, "-std=c++17", "-c", str(unit), "-o", str(tmp_path / "unit.o")],
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


def test_products_tilings_match_their_python_mirrors():
    from sparsetrain.kernels import products

    text = (_loader.KERNEL_DIR / "products.cu").read_text()
    for name, tiles in [("SmallTiles", products.SMALL_TILES), ("LargeTiles", products.LARGE_TILES),
                        ("WgradTiles", products.WGRAD_TILES),
                        ("WgradKeepAllTiles", products.WGRAD_KEEP_ALL_TILES)]:
        assert f"typedef {tiles.cuda()} {name};" in text, name
    hopper = (_loader.KERNEL_DIR / "hopper.cu").read_text()
    for entry, tiles in [("gather_mm_hopper_bfloat16_out_bfloat16", products.HOPPER_TILES)]:
        assert (f"HOPPER_ENTRY({entry}, bf16, {tiles.rows // 64}, {tiles.warps_n}, "
                f"{tiles.stages})") in hopper, entry
    for entry, tiles in [("region_wgrad_hopper_bfloat16", products.HOPPER_WGRAD_TILES),
                         ("region_wgrad_hopper_tall_bfloat16", products.HOPPER_WGRAD_TALL_TILES),
                         ("region_wgrad_hopper_narrow_bfloat16",
                          products.HOPPER_WGRAD_NARROW_TILES),
                         ("region_wgrad_hopper_pair_bfloat16", products.HOPPER_WGRAD_PAIR_TILES),
                         ("region_wgrad_hopper_keep_all_bfloat16",
                          products.HOPPER_WGRAD_REGISTER_TILES),
                         ("region_wgrad_hopper_masked_bfloat16",
                          products.HOPPER_WGRAD_REGISTER_TILES),
                         ("region_wgrad_hopper_keep_all_wide_bfloat16",
                          products.HOPPER_WGRAD_REGISTER_WIDE_TILES),
                         ("region_wgrad_hopper_masked_wide_bfloat16",
                          products.HOPPER_WGRAD_REGISTER_WIDE_TILES)]:
        groups_m, groups_n = tiles.warps_m // 4, tiles.warps_n  # warpgroups along M and N
        assert tiles.rows == 64 * groups_m, entry
        assert (f"WGRAD_HOPPER_ENTRY({entry}, {tiles.columns // groups_n}, {groups_m}, "
                f"{groups_n}, {tiles.stages}, ") in hopper, entry


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
def test_the_early_launch_structures_are_laid_out_as_cuda_h_has_them(tmp_path):
    import ctypes

    probe = tmp_path / "layout.cu"
    probe.write_text(
        "#include <cuda.h>\n#include <cstddef>\n#include <cstdio>\n"
        "int main() {\n"
        "  printf(\"%zu %zu %zu %zu %zu %zu %d\\n\", sizeof(CUlaunchAttribute),\n"
        "         offsetof(CUlaunchAttribute, value), sizeof(CUlaunchConfig),\n"
        "         offsetof(CUlaunchConfig, hStream), offsetof(CUlaunchConfig, attrs),\n"
        "         offsetof(CUlaunchConfig, numAttrs),\n"
        "         (int)CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION);\n"
        "}\n")
    built = subprocess.run([NVCC, str(probe), "-o", str(tmp_path / "layout")],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    printed = subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True)
    attribute, config = _loader._LaunchAttribute, _loader._LaunchConfig
    assert [int(v) for v in printed.stdout.split()] == [
        ctypes.sizeof(attribute), attribute.value.offset, ctypes.sizeof(config),
        config.stream.offset, config.attributes.offset, config.attribute_count.offset,
        _loader.PROGRAMMATIC_STREAM_SERIALIZATION]


def test_early_launches_hold_only_for_the_thread_that_asked():
    import threading

    seen = []
    other = threading.Thread(target=lambda: seen.append(getattr(_loader._launching, "early",
                                                                False)))
    with _loader.early_launches():
        assert _loader._launching.early
        other.start()
        other.join()
    assert seen == [False]
    assert not _loader._launching.early


def test_a_kernel_int_argument_must_fit_an_int32():
    assert _loader._argument(2**31 - 1) == 2**31 - 1
    assert _loader._argument(-2**31) == -2**31
    with pytest.raises(OverflowError, match="int32"):
        _loader._argument(2**31)


def test_kernel_arguments_are_tensors_none_ints_or_tensor_maps():
    assert _loader._argument(None) == 0
    with pytest.raises(TypeError, match="got bool"):
        _loader._argument(True)
    with pytest.raises(TypeError, match="got float"):
        _loader._argument(1.0)
