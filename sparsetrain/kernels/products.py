"""Launchers for the indexed tensor-core products: products.cu (mma.sync, every GPU and dtype)
and hopper.cu (wgmma on sm_90: bf16's indexed products; float32's un-indexed ones, on tf32
with both operands K-major: kmajor_mm)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from sparsetrain.kernels import _tensor_maps
from sparsetrain.kernels._checks import expect, expect_kernel_dtype, expect_rule
from sparsetrain.kernels._loader import DTYPE_NAMES, launch
from sparsetrain.kernels.transpose import transposed


@dataclass(frozen=True)
class Tiles:
    """One kernel tiling, as products.cu's `Tiles<...>` typedef of the same role spells it
    (hopper.cu's tiles are fixed by its entries and unpadded)."""
    rows: int        # output rows per block (region_wgrad: compact columns of dnet)
    columns: int     # output columns per block
    depth: int       # k per shared-memory tile
    warps_m: int
    warps_n: int
    stages: int      # tiles in flight
    padded: bool = True  # rows padded against bank conflicts (products.cu's Layout)
    blocks_per_sm: int = 2  # what the step split of region_wgrad fills the GPU with

    @property
    def threads(self) -> int:
        return 32 * self.warps_m * self.warps_n

    def cuda(self) -> str:
        return (f"Tiles<{self.rows}, {self.columns}, {self.depth}, {self.warps_m}, "
                f"{self.warps_n}, {self.stages}>")


SMALL_TILES = Tiles(64, 128, 32, 2, 4, 4)   # SmallTiles: for 64-row index groups (N = 64)
LARGE_TILES = Tiles(128, 128, 32, 2, 4, 3)  # LargeTiles: where 128 rows fit in a group
WGRAD_TILES = Tiles(64, 128, 32, 2, 4, 3)   # WgradTiles
WGRAD_KEEP_ALL_TILES = Tiles(128, 256, 32, 2, 4, 3)  # WgradKeepAllTiles (and masked)
HOPPER_TILES = Tiles(128, 128, 64, 8, 1, 3, padded=False)  # hopper.cu: two warpgroups
# hopper.cu's plain entry into float32 (split-K per-step products): four stages, one block an SM
HOPPER_STEP_TILES = Tiles(128, 128, 64, 8, 1, 4, padded=False, blocks_per_sm=1)
HOPPER_WGRAD_TILES = Tiles(64, 128, 64, 4, 1, 3, padded=False)   # hopper.cu: one warpgroup
HOPPER_WGRAD_TALL_TILES = Tiles(128, 128, 64, 8, 1, 3, padded=False)   # two, sharing B tiles
HOPPER_WGRAD_NARROW_TILES = Tiles(64, 64, 64, 4, 1, 3, padded=False)
HOPPER_WGRAD_PAIR_TILES = Tiles(64, 128, 64, 4, 2, 4, padded=False)  # two, sharing A tiles
# two warpgroups summing in registers (keep_all, masked): no shared accumulator
HOPPER_WGRAD_REGISTER_TILES = Tiles(128, 128, 64, 8, 1, 3, padded=False)
# four (2 x 2), one block an SM, where their blocks fill the GPU
HOPPER_WGRAD_REGISTER_WIDE_TILES = Tiles(128, 256, 64, 8, 2, 4, padded=False, blocks_per_sm=1)
# The 128 x 256 wgmma tiles of the weight gradients that sum in registers where they make at
# least this many blocks (of one an SM), else 128 x 128 (two an SM).
WIDE_LEAST_BLOCKS = 120
# The batched products fed by the copy engine (hopper.cu keep_all_wgrad_tma, gather_mm_tma):
# two multiplying warpgroups and a loading warp, 128 x 128 tiles in six stages or, where those
# blocks fill the GPU (WIDE_LEAST_BLOCKS), 128 x 256 in four; one block an SM. Switched off by
# benchmarks that time the cp.async-fed kernels.
USE_TMA = True
TMA_TILES = Tiles(128, 128, 64, 8, 1, 6, padded=False, blocks_per_sm=1)
TMA_WIDE_TILES = Tiles(128, 256, 64, 8, 1, 4, padded=False, blocks_per_sm=1)
TMA_THREADS = 288
TMA_BOX = (64, 64, 1)  # one 64 x 64 atom of one step
# gather_mm on them where its 128 x 128 blocks would fill the GPU (the batched dx; the per-step
# products, a few rows, stay on the cp.async-fed kernels) and the slices are whole tiles of
# 64 rows (dx where every slice is kept: backward.DENSE_ROWS). A slice is a box of its own:
# with P = 4 (16 boxes a tile) it ran 2.1x slower than cp.async at xl. On 128 x 256 tiles:
# 1.4x faster than 128 x 128 at xl and nmt (results/batched_products.json).
TMA_GATHER_LEAST_BLOCKS = 132
TMA_GATHER_SLICE = 64
TMA_GATHER_WIDE = True
# The per-step product where every slice is kept (64-row slices, float32 out): 128 x 128 tiles
# in three stages, two blocks an SM (hopper.cu gather_mm_tma_step).
TMA_STEP = True
TMA_STEP_TILES = Tiles(128, 128, 64, 8, 1, 3, padded=False)
RING_BYTES = 1024  # hopper.cu RING_BYTES: the ring's mbarriers, before the stages
# float32 products on tf32 wgmma (hopper.cu kmajor_mm_tma): both operands K-major, 32-deep
# tiles (128 bytes of float32), the same tile shapes and stages as TMA_TILES
KMAJOR_TILES = Tiles(128, 128, 32, 8, 1, 6, padded=False, blocks_per_sm=1)
KMAJOR_WIDE_TILES = Tiles(128, 256, 32, 8, 1, 4, padded=False, blocks_per_sm=1)
KMAJOR_BOX = (32, 128, 1)
KMAJOR_LEAST_TILES = 8  # k tiles per block of a split product, at least
HOPPER_WGRAD_NARROW_ROWS = 64  # wgmma region_wgrad: narrow tiles past this many accumulator rows
# Up to that many rows: "tall" (where it pays) or "wide" (one warpgroup, 128 columns); past
# it: "narrow" (one warpgroup, 64 columns) or "pair" (where it pays).
HOPPER_WGRAD_SMALL_ACCUMULATOR = "tall"
HOPPER_WGRAD_LARGE_ACCUMULATOR = "pair"
# The two-warpgroup tiles take one block per SM: with fewer (column, region) blocks than one
# wave of those they ran 3-13% slower (nmt, ptb), with 256 and more 2-8% faster (large, xl;
# benchmarks/results/wgrad_warpgroups.json).
TWO_WARPGROUP_LEAST_BLOCKS = 132
# S = 0 (dense, fine): region_wgrad sums in registers ("keep_all" kernels); switched off by
# benchmarks that time the shared-accumulator kernels on the same products.
WGRAD_KEEP_ALL = True
KMAJOR_PAD = 8          # products.cu Layout::KMAJOR_PAD (elements)
ACCUMULATOR_ROWS = 256  # region_wgrad's shared accumulator: 136 KB of float32
SHARED_LIMIT = 232448   # dynamic shared memory one block may opt into (sm_90)
GATHER_OUTPUTS = {(torch.float32, torch.float32), (torch.bfloat16, torch.float32),
                  (torch.bfloat16, torch.bfloat16)}
# hopper.cu's wgmma kernels where the GPU has them (sm_90) and the values are bf16; switched off
# by benchmarks and tests that time or check the mma.sync kernels other GPUs run.
USE_WGMMA = True
SMS = 132  # on an H100
TWO_WAVES = 2 * SMS  # blocks of two waves on an H100 (two blocks an SM)
# Past 16 partial sums per output the adds cost more than the shorter chains save (H100, bf16:
# best split 16 at H 1024 and H 512, N 128; 8 at H 2048, N 256; kernel_times.py's sweep).
SPLIT_K_LIMIT = 16


@functools.cache
def _has_wgmma(device: int) -> bool:
    return torch.cuda.get_device_capability(device) == (9, 0)


def chunk_elements(dtype: torch.dtype) -> int:
    """Elements per 16-byte asynchronous copy: row lengths must be multiples of this."""
    return 16 // (2 if dtype == torch.bfloat16 else 4)


def gather_shared_bytes(dtype: torch.dtype, kc: int, P: int, split_k: int,
                        tiles: Tiles) -> int:
    """The tile stages, then one int per index entry of a block's share of Kc."""
    pad_rows, pad_columns = (chunk_elements(dtype), KMAJOR_PAD) if tiles.padded else (0, 0)
    stage = (tiles.rows * (tiles.depth + pad_rows) + tiles.depth * (tiles.columns + pad_columns))
    per_split = -(-kc // split_k)
    depth = -(-per_split // tiles.depth) * tiles.depth  # the kernel's k_len
    return tiles.stages * stage * dtype.itemsize + 4 * (-(-depth // P) + 2)


def wgrad_shared_bytes(dtype: torch.dtype, accumulator_rows: int, tiles: Tiles) -> int:
    pad = KMAJOR_PAD if tiles.padded else 0
    stage = tiles.depth * (tiles.rows + pad + tiles.columns + pad)
    return (accumulator_rows * (tiles.columns + 8) * 4
            + tiles.stages * stage * dtype.itemsize)


def _wgmma(dtype: torch.dtype, device: torch.device) -> bool:
    return USE_WGMMA and dtype == torch.bfloat16 and _has_wgmma(device.index or 0)


def gather_kernel(rows_per_group: int, dtype: torch.dtype, device: torch.device,
                  out_dtype: torch.dtype | None = None) -> tuple[str, str, Tiles]:
    """(module, entry prefix, tiles) of the gather_mm kernel: 128-row tiles where they stay
    inside one index group (on wgmma for bf16 on sm_90), else 64-row tiles. On wgmma the
    entry into float32 (out_dtype) has tiles of its own, HOPPER_STEP_TILES; without out_dtype,
    the tiles of the entries into bf16 and of select_gather_mm's."""
    if _wgmma(dtype, device) and rows_per_group % HOPPER_TILES.rows == 0:
        tiles = HOPPER_STEP_TILES if out_dtype == torch.float32 else HOPPER_TILES
        return "hopper", "gather_mm_hopper", tiles
    if rows_per_group % LARGE_TILES.rows == 0:
        return "products", "gather_mm_large", LARGE_TILES
    return "products", "gather_mm_small", SMALL_TILES


def step_split(rows: int, features: int, kc: int, dtype: torch.dtype,
               device: torch.device, plain: bool = False) -> int:
    """Split-K for the per-step product (plain: gather_mm's into float32 over a compact form;
    else select_gather_mm's, or dense's): blocks for up to two waves of its tiles (one where
    they take a whole SM), each with at least one tile, and at most SPLIT_K_LIMIT partial sums
    added into each output. (One tile a block beat two where the others allow it: nmt coarse
    bf16 8.7 -> 8.1 us; `step_product.py --splits`, results/step_product_splits.json.)"""
    tiles = gather_kernel(rows, dtype, device, torch.float32 if plain else None)[2]
    blocks = -(-features // tiles.columns) * (rows // tiles.rows)
    resident = TWO_WAVES // 2 * tiles.blocks_per_sm  # two waves of two-block-an-SM tiles
    return max(1, min(kc // tiles.depth, resident // max(blocks, 1), SPLIT_K_LIMIT))


def gather_mm(a: torch.Tensor, b: torch.Tensor, index: torch.Tensor, P: int,
              rows_per_group: int, out: torch.Tensor, split_k: int = 1) -> None:
    """out = a . b[kept rows]: a (M, Kc) compact values; row block i of rows_per_group rows
    reads b row index[i][k // P] * P + k % P for its compact column k.

    split_k > 1 splits Kc over blocks that add into out (float32 only): out must hold zeros
    (or what the product should be added to).
    """
    expect_kernel_dtype(a.dtype, "a")
    m, kc = a.shape
    expect_rule((a.dtype, out.dtype) in GATHER_OUTPUTS,
                f"gather_mm: no {a.dtype} -> {out.dtype} entry")
    expect_rule(P % 4 == 0 and kc % P == 0 and rows_per_group % SMALL_TILES.rows == 0
                and m % rows_per_group == 0 and b.dim() == 2 and b.shape[1] % 4 == 0,
                f"gather_mm: need 4 | P ({P}) | Kc ({kc}), {SMALL_TILES.rows} | rows_per_group "
                f"({rows_per_group}) | M ({m}), 4 | F")
    chunk = chunk_elements(a.dtype)
    expect_rule(kc % chunk == 0 and b.shape[1] % chunk == 0,
                f"gather_mm: Kc ({kc}) and F ({b.shape[1]}) must be multiples of {chunk} "
                f"for {a.dtype}")
    expect_rule(split_k == 1 or out.dtype == torch.float32, "gather_mm: split_k needs float32 out")
    expect(a, "a", a.dtype)
    expect(b, "b", a.dtype, (b.shape[0], b.shape[1]) if b.dim() == 2 else (-1, -1))
    expect(index, "index", torch.int32, (m // rows_per_group, kc // P))
    expect(out, "out", out.dtype, (m, b.shape[1]))
    features = b.shape[1]
    tma_tiles = _gather_tma_tiles(a.dtype, a.device, P, rows_per_group, m, features, out.dtype)
    if tma_tiles is not None:
        _gather_tma(a, b, index, P, rows_per_group, out, split_k, tma_tiles)
        return
    module, prefix, tiles = gather_kernel(rows_per_group, a.dtype, a.device, out.dtype)
    grid, block, shared = gather_geometry(a.dtype, m, kc, features, P, split_k, tiles)
    launch(module, f"{prefix}_{DTYPE_NAMES[a.dtype]}_out_{DTYPE_NAMES[out.dtype]}",
           grid, block, (a, b, index, P, rows_per_group, out, m, kc, features),
           shared_mem=shared)


def _gather_tma_tiles(dtype: torch.dtype, device: torch.device, P: int, rows_per_group: int,
                      rows: int, features: int, out_dtype: torch.dtype) -> Tiles | None:
    """The tiles of gather_mm_tma for this product, or None where it does not run. It takes
    bf16 on sm_90, 128-row tiles inside an index group, and slices of P rows dividing a 64-row
    tile (each slice a box of its own), and runs where the slices are TMA_GATHER_SLICE rows:
    the batched entry where its 128 x 128 blocks would fill the GPU, else the per-step one
    (float32 out)."""
    if not (USE_TMA and _wgmma(dtype, device) and rows_per_group % TMA_TILES.rows == 0
            and 64 % P == 0 and P >= TMA_GATHER_SLICE):
        return None
    if rows // TMA_TILES.rows * -(-features // TMA_TILES.columns) >= TMA_GATHER_LEAST_BLOCKS:
        return TMA_WIDE_TILES if TMA_GATHER_WIDE else TMA_TILES
    return TMA_STEP_TILES if TMA_STEP and out_dtype == torch.float32 else None


def _gather_tma(a: torch.Tensor, b: torch.Tensor, index: torch.Tensor, P: int,
                rows_per_group: int, out: torch.Tensor, split_k: int, tiles: Tiles) -> None:
    m, kc = a.shape
    features = b.shape[1]
    grid, _, shared = gather_geometry(a.dtype, m, kc, features, P, split_k, tiles)
    a_map = _tensor_maps.tiled(a.unsqueeze(0), (tiles.depth, tiles.rows, 1))
    b_map = _tensor_maps.tiled(b.unsqueeze(0), (TMA_BOX[0], P, 1))
    kind = "_step" if tiles is TMA_STEP_TILES else _wide(tiles)
    launch("hopper", f"gather_mm_tma{kind}_bfloat16_out_{DTYPE_NAMES[out.dtype]}", grid,
           (TMA_THREADS,), (a_map, b_map, index, P, rows_per_group, b.shape[0], out, m, kc,
                            features), shared_mem=RING_BYTES + shared)


def gather_geometry(dtype: torch.dtype, m: int, kc: int, features: int, P: int, split_k: int,
                    tiles: Tiles) -> tuple[tuple[int, int, int], tuple[int], int]:
    """Grid, block and dynamic shared bytes of one gather_mm (or select_gather_mm) launch."""
    return ((-(-features // tiles.columns), m // tiles.rows, split_k), (tiles.threads,),
            gather_shared_bytes(dtype, kc, P, split_k, tiles))


# Region sizes the in-product selection takes: powers of two up to a warp, so that a region's
# slices sit in adjacent lanes of one warp (common.cuh's decide_coarse).
SELECT_REGIONS = (2, 4, 8, 16, 32)
SLICE_WIDTHS = (4, 8, 16, 32)  # P: whole 16-byte copies in float32, halves of them in bf16


def coarse_problem(P: int, R: int, S: int, width: int) -> str | None:
    """Why coarse (P, R, S) has no kernels at gate width 4H = `width` (None when it has)."""
    if P not in SLICE_WIDTHS:
        return f"coarse P={P} is not one of {', '.join(map(str, SLICE_WIDTHS))}"
    if R not in SELECT_REGIONS or not 0 <= S < R:
        return (f"coarse R={R}, S={S}: need R one of {', '.join(map(str, SELECT_REGIONS))} "
                f"and 0 <= S < R")
    if width % (P * R):
        return f"coarse: 4H={width} is not divisible by P*R={P * R}"
    if wgrad_regions_per_block(P, R, S) == 0:
        return f"coarse R={R}, S={S}, P={P}: regions too large for the kernels"
    if (width // (P * R)) * (R - S) * P % 8:
        return "coarse: the kept columns per step must be a multiple of 8"
    return None


def select_gather_mm(dnet: torch.Tensor, partial: torch.Tensor, b: torch.Tensor, P: int,
                     R: int, S: int, out: torch.Tensor, split_k: int, index: torch.Tensor,
                     slot: torch.Tensor, values: torch.Tensor, energy: torch.Tensor) -> None:
    """One step of coarse, selection and product in one launch: out (+)= s . b[kept rows].

    Each region of R slices (P columns of dnet each; R in SELECT_REGIONS) keeps its R - S
    slices of largest squared norm, summed over partial's row chunks (ties: the lower slice);
    s is dnet's kept slices in compact order, and compact column k reads b row
    index[k // P] * P + k % P as gather_mm does. dnet (N, 4H); partial (chunks, 4H/P); out (N, F) float32 (with split_k > 1 it must
    hold zeros). Also writes the selection: index (G, R-S) the kept global slices, ascending
    per region; slot (4H/P,) each slice's compact slice or -1; values (N, G*(R-S)*P) the
    compact form s; energy (G, 2) kept and total squared norm per region.
    """
    expect_kernel_dtype(dnet.dtype, "dnet")
    expect_rule(dnet.dim() == 2, f"select_gather_mm: dnet must be (N, 4H), got {tuple(dnet.shape)}")
    n, width = dnet.shape
    problem = coarse_problem(P, R, S, width)
    expect_rule(problem is None, f"select_gather_mm: {problem}")
    regions, keep = width // (P * R), R - S
    kc = regions * keep * P
    chunk = chunk_elements(dnet.dtype)
    expect_rule(n % SMALL_TILES.rows == 0 and b.dim() == 2 and b.shape[1] % chunk == 0,
                f"select_gather_mm: F must be a multiple of {chunk}, N ({n}) of "
                f"{SMALL_TILES.rows}")
    expect(dnet, "dnet", dnet.dtype)
    chunks = partial.shape[0] if partial.dim() == 2 else -1
    expect(partial, "partial", torch.float32, (chunks, width // P))
    expect(b, "b", dnet.dtype, (width, b.shape[1]))
    expect(out, "out", torch.float32, (n, b.shape[1]))
    expect(index, "index", torch.int32, (regions, keep))
    expect(slot, "slot", torch.int32, (width // P,))
    expect(values, "values", dnet.dtype, (n, kc))
    expect(energy, "energy", torch.float32, (regions, 2))
    features = b.shape[1]
    module, prefix, tiles = gather_kernel(n, dnet.dtype, dnet.device)
    grid, block, shared = gather_geometry(dnet.dtype, n, kc, features, P, split_k, tiles)
    launch(module, f"select_{prefix}_{DTYPE_NAMES[dnet.dtype]}", grid, block,
           (dnet, b, P, out, n, kc, features, width, partial, chunks, R, S, index, slot, energy,
            values), shared_mem=shared)


def wgrad_regions_per_block(P: int, R: int, S: int, tiles: Tiles = WGRAD_TILES) -> int:
    """Whole regions one region_wgrad block takes (0: the method's regions do not fit).

    A block's compact columns start on a 16-byte boundary in either dtype (a multiple of 8).
    """
    kept_columns = (R - S) * P
    per_block = min(tiles.rows // kept_columns, ACCUMULATOR_ROWS // (R * P))
    while per_block > 1 and (per_block * kept_columns) % 8:
        per_block -= 1
    if per_block == 0 or (per_block * kept_columns) % 8:
        return 0
    return per_block


WGRAD_LEAST_STEPS = 4      # steps per block, at least


def region_wgrad(values: torch.Tensor, x: torch.Tensor, index: torch.Tensor,
                 slot: torch.Tensor, P: int, R: int, S: int, steps: int,
                 out: torch.Tensor) -> None:
    """out (G*R*P, F) float32 = sum over steps of s_t^T x_t; values (steps*N, G*(R-S)*P),
    x (steps*N, F), index (steps, G*(R-S)) global slice numbers, ascending per region, and slot
    (steps, G*R) each slice's compact slice or -1, the same selection.

    Where the (column, region) blocks are too few to fill the GPU, the steps are split
    between blocks that add into out (zeroed here first)."""
    expect_kernel_dtype(values.dtype, "values")
    rows, kc = values.shape
    expect_rule(steps > 0 and rows % steps == 0, f"region_wgrad: {steps} steps must divide {rows}")
    expect_rule(0 <= S < R and P % 4 == 0 and kc % ((R - S) * P) == 0,
                f"region_wgrad: need 4 | P ({P}) and (R-S)*P dividing Kc={kc}")
    expect_rule(x.dim() == 2 and x.shape[1] % 4 == 0, "region_wgrad: x's width must be a "
                "multiple of 4")
    regions, features = kc // ((R - S) * P), x.shape[1]
    module, name, tiles = wgrad_kernel(values.dtype, values.device, P, R, S, regions, features)
    regions_per_block = wgrad_regions_per_block(P, R, S, tiles)
    expect_rule(regions_per_block > 0, f"region_wgrad: (R-S)*P={(R - S) * P} compact columns "
                f"per region or R*P={R * P} rows exceed the shared-memory accumulator "
                f"(or no whole number of regions fills a multiple of 8 columns)")
    chunk = chunk_elements(values.dtype)
    expect_rule(kc % chunk == 0 and features % chunk == 0,
                f"region_wgrad: Kc ({kc}) and x's width must be multiples of {chunk} "
                f"for {values.dtype}")
    expect(values, "values", values.dtype)
    expect(x, "x", values.dtype, (rows, features))
    expect(index, "index", torch.int32, (steps, regions * (R - S)))
    expect(slot, "slot", torch.int32, (steps, regions * R))
    expect(out, "out", torch.float32, (regions * R * P, features))
    if S == 0 and keep_all_on_tma(values.dtype, values.device):
        keep_all_wgrad(keep_all_source(values), x, steps, out)
        return
    grid, block, shared = wgrad_geometry(values.dtype, regions, features, regions_per_block,
                                         P, R, steps, tiles,
                                         "keep_all" if "keep_all" in name else "shared")
    if grid[2] > 1:
        out.zero_()
    launch(module, f"{name}_{DTYPE_NAMES[values.dtype]}", grid, block,
           (values, x, index, slot, P, R, S, steps, rows // steps, features, kc,
            regions_per_block, out), shared_mem=shared)


def keep_all_on_tma(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether region_wgrad with every slice kept runs on a copy-engine-fed kernel (sm_90:
    bf16 on keep_all_wgrad_tma, float32 on kmajor_mm_tma): then coarse's weight gradients run
    as dense's, over dnet with its dropped slices zeroed, faster than masked_wgrad
    (benchmarks/NOTES.md v9, v10)."""
    return WGRAD_KEEP_ALL and (_wgmma(dtype, device) or kmajor_on_tma(dtype, device))


def kmajor_on_tma(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether float32 products run on tf32 wgmma (kmajor_mm): float32 on sm_90."""
    return USE_TMA and USE_WGMMA and dtype == torch.float32 and _has_wgmma(device.index or 0)


def keep_all_source(values: torch.Tensor) -> torch.Tensor:
    """values (steps*N, Kc) as keep_all_wgrad reads it, made once for both weight gradients:
    bf16 as it is; float32 transposed (tf32 wgmma reads only K-major operands, and the sum
    runs over the rows)."""
    return transposed(values) if values.dtype == torch.float32 else values


def keep_all_out_dtype(dtype: torch.dtype, kc: int, features: int, steps: int) -> torch.dtype:
    """The dtype keep_all_wgrad may write a (Kc, F) out in, for values of `dtype`: bf16 where
    its blocks do not split the steps (each writes its tile once, rounded from the float32
    sum as a later conversion would round it), else float32 (the splits add into out)."""
    if dtype == torch.float32:
        return torch.float32
    return _keep_all_out(dtype, _keep_all_tma_geometry(dtype, kc, features, steps)[1])


def _keep_all_out(dtype: torch.dtype, grid: tuple[int, int, int]) -> torch.dtype:
    """The narrowest out keep_all_wgrad_tma writes on this grid: bf16 values' dtype where no
    blocks split the steps (grid[2]), else float32."""
    return dtype if grid[2] == 1 else torch.float32


def _keep_all_tma_geometry(dtype: torch.dtype, kc: int, features: int,
                           steps: int) -> tuple[Tiles, tuple[int, int, int]]:
    """keep_all_wgrad_tma's tiles and grid (column blocks, row blocks, step splits)."""
    tiles = _wide_where_filled(kc, features, TMA_WIDE_TILES, TMA_TILES)
    grid, _, _ = wgrad_geometry(dtype, kc, features, tiles.rows, 1, 1, steps, tiles,
                                "keep_all")
    return tiles, grid


def keep_all_wgrad(source: torch.Tensor, x: torch.Tensor, steps: int,
                   out: torch.Tensor) -> None:
    """out (Kc, F) = sum over steps of s_t^T x_t, every slice kept, on a copy-engine-fed
    kernel (where keep_all_on_tma); source = keep_all_source(values), x (steps*N, F); out
    float32, or bf16 where keep_all_out_dtype allows."""
    if source.dtype == torch.float32:
        kmajor_mm(source, transposed(x), out)
    else:
        _keep_all_tma(source, x, steps, out)


def _tma_shared_bytes(tiles: Tiles, element_size: int) -> int:
    """Dynamic shared memory of a copy-engine-fed kernel without an index: the ring's
    barriers, then the stages of an A tile (rows x depth) and a B tile (columns x depth)."""
    return RING_BYTES + tiles.stages * tiles.depth * (tiles.rows + tiles.columns) * element_size


def _kmajor_tiles(rows: int, features: int) -> tuple[Tiles, tuple[int, int]]:
    tiles = _wide_where_filled(rows, features, KMAJOR_WIDE_TILES, KMAJOR_TILES)
    return tiles, (-(-features // tiles.columns), -(-rows // tiles.rows))


def kmajor_split(rows: int, features: int, depth: int) -> int:
    """kmajor_mm's split-K for an (M, F) = (rows, features) product over K = depth: blocks up
    to one wave, each with at least KMAJOR_LEAST_TILES k tiles."""
    tiles, blocks = _kmajor_tiles(rows, features)
    return max(1, min(-(-depth // tiles.depth) // KMAJOR_LEAST_TILES,
                      SMS // (blocks[0] * blocks[1])))


def kmajor_mm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor,
              split_k: int | None = None, add: bool = False) -> None:
    """out (M, F) float32 = a (M, K) . b (F, K)^T (add: out += a . b^T): float32 operands,
    both K-major, on tf32 wgmma fed by the copy engine (where kmajor_on_tma).

    split_k > 1 splits the k tiles between blocks that add into out, which must then hold
    zeros (or what the product should be added to); None: kmajor_split's, out zeroed here
    unless add."""
    expect_rule(a.dim() == 2 and b.dim() == 2, "kmajor_mm: a and b must be matrices")
    (rows, depth), features = a.shape, b.shape[0]
    expect_rule(depth % 4 == 0, f"kmajor_mm: K ({depth}) must be a multiple of 4 (16-byte rows "
                "for the copy engine)")
    expect(a, "a", torch.float32)
    expect(b, "b", torch.float32, (features, depth))
    expect(out, "out", torch.float32, (rows, features))
    tiles, blocks = _kmajor_tiles(rows, features)
    split = split_k
    if split is None:
        split = kmajor_split(rows, features, depth)
        if split > 1 and not add:
            out.zero_()
    shared = _tma_shared_bytes(tiles, a.element_size())
    a_map = _tensor_maps.tiled(a.view(1, rows, depth), KMAJOR_BOX)
    b_map = _tensor_maps.tiled(b.view(1, features, depth), KMAJOR_BOX)
    launch("hopper", f"kmajor_mm_tma{_wide(tiles)}_float32", (*blocks, split), (TMA_THREADS,),
           (a_map, b_map, rows, features, depth, out, int(add)), shared_mem=shared)


def _keep_all_tma(values: torch.Tensor, x: torch.Tensor, steps: int, out: torch.Tensor) -> None:
    """region_wgrad with every slice kept, on hopper.cu's keep_all_wgrad_tma."""
    rows, kc = values.shape
    features, batch = x.shape[1], rows // steps
    tiles, grid = _keep_all_tma_geometry(values.dtype, kc, features, steps)
    shared = _tma_shared_bytes(tiles, values.element_size())
    allowed = {torch.float32, _keep_all_out(values.dtype, grid)}
    expect_rule(out.dtype in allowed, f"keep_all_wgrad: out must be "
                f"{' or '.join(sorted(DTYPE_NAMES[d] for d in allowed))} (bf16 only where "
                f"the steps are not split between blocks, which add into out), got {out.dtype}")
    expect(out, "out", out.dtype, (kc, features))
    if grid[2] > 1:
        out.zero_()
    values_map = _tensor_maps.tiled(values.view(steps, batch, kc), TMA_BOX)
    x_map = _tensor_maps.tiled(x.view(steps, batch, features), TMA_BOX)
    launch("hopper", f"keep_all_wgrad_tma{_wide(tiles)}_bfloat16_out_{DTYPE_NAMES[out.dtype]}",
           grid, (TMA_THREADS,),
           (values_map, x_map, steps, batch, features, kc, out), shared_mem=shared)


def wgrad_kernel(dtype: torch.dtype, device: torch.device, P: int, R: int, S: int,
                 regions: int, features: int) -> tuple[str, str, Tiles]:
    """(module, entry prefix, tiles) of the region_wgrad kernel: wgmma on sm_90 for bf16, else
    mma.sync. Where every slice is kept (S = 0) the sum stays in registers ("keep_all"). Else on
    wgmma: 64 columns a warpgroup where the accumulator is large, 128 where it is small, and
    two warpgroups sharing a tile where their accumulator fits in shared memory and their
    blocks fill the GPU."""
    keep_all = S == 0 and WGRAD_KEEP_ALL
    if not _wgmma(dtype, device):
        if keep_all:
            return "products", "region_wgrad_keep_all", WGRAD_KEEP_ALL_TILES
        return "products", "region_wgrad", WGRAD_TILES
    if keep_all:
        tiles = register_tiles(regions * R * P, features)
        return "hopper", f"region_wgrad_hopper_keep_all{_wide(tiles)}", tiles

    def fits(tiles: Tiles) -> bool:
        per_block = wgrad_regions_per_block(P, R, S, tiles)
        if per_block == 0:
            return False
        grid, _, shared = wgrad_geometry(dtype, regions, features, per_block, P, R, 1, tiles)
        return shared <= SHARED_LIMIT and grid[0] * grid[1] >= TWO_WARPGROUP_LEAST_BLOCKS

    rows = wgrad_regions_per_block(P, R, S, HOPPER_WGRAD_TILES) * R * P
    if rows > HOPPER_WGRAD_NARROW_ROWS:
        if HOPPER_WGRAD_LARGE_ACCUMULATOR == "pair" and fits(HOPPER_WGRAD_PAIR_TILES):
            return "hopper", "region_wgrad_hopper_pair", HOPPER_WGRAD_PAIR_TILES
        return "hopper", "region_wgrad_hopper_narrow", HOPPER_WGRAD_NARROW_TILES
    if HOPPER_WGRAD_SMALL_ACCUMULATOR == "tall" and fits(HOPPER_WGRAD_TALL_TILES):
        return "hopper", "region_wgrad_hopper_tall", HOPPER_WGRAD_TALL_TILES
    return "hopper", "region_wgrad_hopper", HOPPER_WGRAD_TILES


def wgrad_geometry(dtype: torch.dtype, regions: int, features: int, regions_per_block: int,
                   P: int, R: int, steps: int, tiles: Tiles,
                   sum_: str = "shared") -> tuple[tuple[int, int, int], tuple[int], int]:
    """Grid (column blocks, region blocks, step splits), block and dynamic shared bytes of one
    region_wgrad or masked_wgrad launch. sum_: "shared" (an accumulator of the block's
    regions' rows in shared memory), "keep_all" (none), "masked" (R = 1: which of the block's
    columns each of its steps kept)."""
    blocks = (-(-features // tiles.columns), -(-regions // regions_per_block))
    split = max(1, min(steps // WGRAD_LEAST_STEPS,
                       SMS * tiles.blocks_per_sm // (blocks[0] * blocks[1])))
    shared = wgrad_shared_bytes(dtype, regions_per_block * R * P if sum_ == "shared" else 0,
                                tiles)
    if sum_ == "masked":  # an int per step and 16-byte piece of the block's columns
        shared += 4 * -(-steps // split) * (tiles.rows // chunk_elements(dtype))
    return ((*blocks, split), (tiles.threads,), shared)


def register_tiles(rows: int, features: int) -> Tiles:
    """The wgmma tiles of the weight gradients that sum in registers for a dW of rows x
    features: 128 x 256 where those blocks fill the GPU (WIDE_LEAST_BLOCKS), else 128 x 128."""
    return _wide_where_filled(rows, features, HOPPER_WGRAD_REGISTER_WIDE_TILES,
                              HOPPER_WGRAD_REGISTER_TILES)


def _wide_where_filled(rows: int, features: int, wide: Tiles, narrow: Tiles) -> Tiles:
    """wide where its blocks for a rows x features product fill the GPU (WIDE_LEAST_BLOCKS)."""
    blocks = -(-rows // wide.rows) * -(-features // wide.columns)
    return wide if blocks >= WIDE_LEAST_BLOCKS else narrow


def _wide(tiles: Tiles) -> str:
    return "_wide" if tiles.columns == 256 else ""


def _masked_kernel(dtype: torch.dtype, device: torch.device, width: int,
                   features: int) -> tuple[str, str, Tiles]:
    """(module, entry, tiles) of masked_wgrad: wgmma (bf16 on sm_90), else mma.sync."""
    if _wgmma(dtype, device):
        tiles = register_tiles(width, features)
        return "hopper", f"region_wgrad_hopper_masked{_wide(tiles)}_bfloat16", tiles
    return "products", f"region_wgrad_masked_{DTYPE_NAMES[dtype]}", WGRAD_KEEP_ALL_TILES


def masked_wgrad_fits(dtype: torch.dtype, device: torch.device, P: int, steps: int,
                      width: int, features: int) -> bool:
    """Whether masked_wgrad has a kernel for this product: P 4 or a multiple of 8, 4H a
    multiple of the tile's rows, and which slices a block's steps kept in shared memory."""
    if not (P == 4 or P % 8 == 0):
        return False
    tiles = _masked_kernel(dtype, device, width, features)[2]
    shared = wgrad_geometry(dtype, width // P, features, tiles.rows // P, P, 1, steps, tiles,
                            "masked")[2]
    return width % tiles.rows == 0 and shared <= SHARED_LIMIT


def masked_wgrad(dnet: torch.Tensor, x: torch.Tensor, slot: torch.Tensor, P: int, steps: int,
                 out: torch.Tensor) -> None:
    """out (4H, F) float32 = sum over steps of m_t^T x_t, where m_t is dnet_t (N, 4H) with
    the slices the step dropped (slot[t][slice] == -1; P columns each) read as zeros.
    dnet (steps*N, 4H), x (steps*N, F); only where masked_wgrad_fits.

    As fast as dense's weight gradient, and faster on H100 than region_wgrad's adds of each
    step into the kept rows, though its tensor cores multiply the zeros
    (benchmarks/results/wgrad_warpgroups.json)."""
    expect_kernel_dtype(dnet.dtype, "dnet")
    rows, width = dnet.shape
    expect_rule(steps > 0 and rows % steps == 0, f"masked_wgrad: {steps} steps must divide {rows}")
    features = x.shape[1] if x.dim() == 2 else -1
    expect_rule(masked_wgrad_fits(dnet.dtype, dnet.device, P, steps, width, features),
                f"masked_wgrad: no kernel for {dnet.dtype}, P={P}, 4H={width}")
    expect_rule(features % chunk_elements(dnet.dtype) == 0,
                f"masked_wgrad: x's width must be a multiple of {chunk_elements(dnet.dtype)}")
    expect(dnet, "dnet", dnet.dtype)
    expect(x, "x", dnet.dtype, (rows, features))
    expect(slot, "slot", torch.int32, (steps, width // P))
    expect(out, "out", torch.float32, (width, features))
    module, entry, tiles = _masked_kernel(dnet.dtype, dnet.device, width, features)
    slices_per_block = tiles.rows // P
    grid, block, shared = wgrad_geometry(dnet.dtype, width // P, features, slices_per_block, P,
                                         1, steps, tiles, "masked")
    if grid[2] > 1:
        out.zero_()
    launch(module, entry, grid, block,
           (dnet, x, slot, slot, P, 1, 0, steps, rows // steps, features, width,
            slices_per_block, out), shared_mem=shared)


def step_column_sums(values: torch.Tensor, index: torch.Tensor, P: int, width: int,
                     out: torch.Tensor) -> None:
    """out (steps, width) float32: per step, the column sums of s_t at the gate columns (0 at
    the dropped ones); values (steps*N, Kc), index (steps, Kc/P) each compact slice's global
    slice number."""
    expect_kernel_dtype(values.dtype, "values")
    rows, kc = values.shape
    steps = index.shape[0] if index.dim() == 2 else -1
    expect_rule(steps > 0 and rows % steps == 0 and P % 4 == 0 and kc % P == 0,
                f"step_column_sums: need steps ({steps}) dividing {rows} rows and 4 | P ({P}) "
                f"dividing Kc ({kc})")
    expect(values, "values", values.dtype)
    expect(index, "index", torch.int32, (steps, kc // P))
    expect(out, "out", torch.float32, (steps, width))
    out.zero_()
    launch("products", f"step_column_sums_{DTYPE_NAMES[values.dtype]}",
           (-(-kc // 128), steps), (32, 8), (values, index, P, rows // steps, kc, width, out))
