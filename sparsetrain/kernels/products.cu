// Matrix products on the compact form of dnet, on tensor cores (bf16 m16n8k16 or tf32 m16n8k8,
// fp32 accumulate). Dropped slices are skipped by indexing: no weight row or column is copied.

// Tiles stream through a ring of shared-memory stages filled by cp.async (16-byte chunks):
// while the tensor cores work on one tile, the next STAGES-1 tiles' loads are in flight, so a
// block waits for global memory once per kernel rather than once per tile. Every row length
// (Kc, F, N x Kc rows) must be a multiple of the chunk (8 bf16 / 4 float32 elements).

// One kernel's tiling: BM x BN outputs per block, BK-deep tiles, WARPS_M x WARPS_N warps each
// owning a (BM / WARPS_M) x (BN / WARPS_N) warp tile, STAGES tiles in flight. Larger warp
// tiles read fewer shared-memory bytes per tensor-core step; smaller blocks fill more SMs.
template <int BM_, int BN_, int BK_, int WARPS_M_, int WARPS_N_, int STAGES_> struct Tiles {
    static constexpr int BM = BM_, BN = BN_, BK = BK_, STAGES = STAGES_;
    static constexpr int WARPS_N = WARPS_N_, THREADS = 32 * WARPS_M_ * WARPS_N_;
    static constexpr int WM = BM / WARPS_M_, WN = BN / WARPS_N_;  // one warp's tile
    static constexpr int MT = WM / 16, NT = WN / 8;                // its m16 x n8 pieces
    static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tiles are whole m16 x n16 pieces");
};

// Row padding of the shared tiles, in elements, chosen so fragment reads hit distinct banks:
// row-major tiles (A[m][k]) are read by ldmatrix rows (bf16: stride 16 bytes past a multiple
// of 128) or as A[g][t] words (tf32: stride 4 words past a multiple of 32); k-major tiles
// (B[k][n]) by ldmatrix.trans rows (bf16, 16 bytes) or as B[t][g] words (tf32, 8 words).
template <typename T> struct Layout {
    static constexpr int CHUNK = 16 / sizeof(T);  // elements per 16-byte copy
    static constexpr int ROW_PAD = CHUNK;
    static constexpr int KMAJOR_PAD = 8;
};

// 16-byte copies per thread of a BM x BK (A) and a BK x BN (B) tile; every thread copies whole
// chunks.
template <typename T, class C> struct Copies {
    static constexpr int A = C::BM * C::BK / Layout<T>::CHUNK / C::THREADS;
    static constexpr int B = C::BK * C::BN / Layout<T>::CHUNK / C::THREADS;
    static_assert(A * Layout<T>::CHUNK * C::THREADS == C::BM * C::BK, "A tile: whole chunks");
    static_assert(B * Layout<T>::CHUNK * C::THREADS == C::BK * C::BN, "B tile: whole chunks");
};

// out (M x F) = A (M x Kc, compact values) . B[rows of the kept slices] (B is rows x F).
// Compact column k of row block `group` reads B row index[group][k / P] * P + k % P, where
// group = row / rows_per_group (one step's N rows share one index; rows_per_group % C::BM == 0).
// gridDim.z > 1 splits Kc and adds atomically (fp32 out only; out must hold zeros first).
// SELECT (the per-step product of coarse, one group): the block decides the kept slices itself
// (decide_coarse) and reads A's compact column k from the full-width dnet (lda columns) at
// that same row, so no selection kernel sits between the cell step and this product.
// Dynamic shared memory: C::STAGES stages of gather_stage<T, C>() elements, then the block's
// index entries (k_len / P + 2 ints; common.cuh's gather_rows), read or decided once so that
// no tile's copies wait on a global load.
template <typename T, class C> __host__ __device__ constexpr int gather_stage() {
    return C::BM * (C::BK + Layout<T>::ROW_PAD) + C::BK * (C::BN + Layout<T>::KMAJOR_PAD);
}

template <typename T, typename OutT, class C, bool SELECT>
__device__ void gather_mm(const T* A, const T* B, const int* index, int P, int rows_per_group,
                          OutT* out, int M, int Kc, int F, int lda, StepSelection selection) {
    constexpr int KS = Mma<T>::K, CH = Layout<T>::CHUNK;
    constexpr int LDA = C::BK + Layout<T>::ROW_PAD, LDB = C::BN + Layout<T>::KMAJOR_PAD;
    constexpr int A_CHUNKS = Copies<T, C>::A, B_CHUNKS = Copies<T, C>::B;
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    T* stages = reinterpret_cast<T*>(shared_bytes);
    int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, t = lane & 3;
    int m0 = blockIdx.y * C::BM, n0 = blockIdx.x * C::BN;
    int wm = (warp / C::WARPS_N) * C::WM, wn = (warp % C::WARPS_N) * C::WN;
    int* first_rows = reinterpret_cast<int*>(stages + C::STAGES * gather_stage<T, C>());
    wait_for_previous_kernel();  // the step loop's: A (and the selection) just written
    const int* idx = SELECT ? nullptr : index + (size_t)(m0 / rows_per_group) * (Kc / P);
    KShare share = gather_rows<C::BK, SELECT>(idx, selection, P, Kc, first_rows);
    int k_begin = share.begin, k_end = share.end, k_tiles = share.tiles;
    // P a power of two (always under SELECT): shifts, not divisions, in every B chunk's lookup
    int first_slice = share.first_slice, p_shift = __ffs(P) - 1;
    bool p_power = SELECT || (P & (P - 1)) == 0;
    auto issue = [&](int tile) {
        T* As = stages + (tile % C::STAGES) * gather_stage<T, C>();
        T* Bs = As + C::BM * LDA;
        int k0 = k_begin + tile * C::BK;
        // A's chunks of a thread share their columns: THREADS * CH is a multiple of BK.
        static_assert(C::THREADS * CH % C::BK == 0, "one column per thread in A tiles");
        int k = tid * CH % C::BK;
        ChunkColumns columns{};
        if constexpr (SELECT)
            if (k0 + k < k_end)
                columns = chunk_columns<T>(first_rows, first_slice, k0 + k, P, p_shift);
#pragma unroll
        for (int i = 0; i < A_CHUNKS; ++i) {
            int r = (tid + i * C::THREADS) * CH / C::BK;
            bool inside = m0 + r < M && k0 + k < k_end;
            const T* row = A + (size_t)min(m0 + r, M - 1) * lda;
            if constexpr (SELECT)
                copy_selected(&As[r * LDA + k], row, columns, inside);
            else
                copy_async16(&As[r * LDA + k], inside ? row + k0 + k : A, inside ? 16 : 0);
        }
#pragma unroll
        for (int i = 0; i < B_CHUNKS; ++i) {
            int e = (tid + i * C::THREADS) * CH, k = e / C::BN, c = e % C::BN;
            int kk = k0 + k;
            bool inside = kk < k_end && n0 + c < F;
            int b_row = p_power ? first_rows[(kk >> p_shift) - first_slice] + (kk & (P - 1))
                               : first_rows[kk / P - first_slice] + kk % P;
            const T* source = inside ? B + (size_t)b_row * F + n0 + c : B;
            copy_async16(&Bs[k * LDB + c], source, inside ? 16 : 0);
        }
    };
    float acc[C::MT][C::NT][4];
#pragma unroll
    for (int mt = 0; mt < C::MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < C::NT; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.f;
#pragma unroll
    for (int s = 0; s < C::STAGES - 1; ++s) {
        if (s < k_tiles) issue(s);
        copy_async_commit();
    }
    for (int tile = 0; tile < k_tiles; ++tile) {
        copy_async_wait<C::STAGES - 2>();
        __syncthreads();  // tile's stage has landed for all; the stage refilled below is free
        if (tile + C::STAGES - 1 < k_tiles) issue(tile + C::STAGES - 1);
        copy_async_commit();
        const T* As = stages + (tile % C::STAGES) * gather_stage<T, C>();
        const T* Bs = As + C::BM * LDA;
        if constexpr (SELECT)
            if (selection.values) {
                int k = tid * CH % C::BK, k_global = k_begin + tile * C::BK + k;
#pragma unroll
                for (int i = 0; i < A_CHUNKS; ++i) {
                    int r = (tid + i * C::THREADS) * CH / C::BK;
                    if (m0 + r < M && k_global < k_end)
                        store_compact(selection, Kc, m0 + r, k_global, &As[r * LDA + k]);
                }
            }
#pragma unroll
        for (int kk = 0; kk < C::BK; kk += KS) {
            unsigned a[C::MT][4], b[C::NT][2];
#pragma unroll
            for (int mt = 0; mt < C::MT; ++mt)
                Mma<T>::frag_a_rows(a[mt], &As[(wm + 16 * mt) * LDA + kk], LDA, lane);
#pragma unroll
            for (int nt = 0; nt < C::NT; nt += 2)
                Mma<T>::frag_b2_kmajor(b[nt], b[nt + 1], &Bs[kk * LDB + wn + 8 * nt], LDB, lane);
#pragma unroll
            for (int mt = 0; mt < C::MT; ++mt)
#pragma unroll
                for (int nt = 0; nt < C::NT; ++nt) Mma<T>::mma(acc[mt][nt], a[mt], b[nt]);
        }
    }
    let_next_kernel_launch();
#pragma unroll
    for (int mt = 0; mt < C::MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < C::NT; ++nt)
#pragma unroll
            for (int half = 0; half < 2; ++half) {  // two adjacent columns per thread
                int row = m0 + wm + 16 * mt + g + 8 * half, col = n0 + wn + 8 * nt + 2 * t;
                if (row >= M || col >= F) continue;
                store_pair(out + (size_t)row * F + col, acc[mt][nt][2 * half],
                           acc[mt][nt][2 * half + 1], gridDim.z > 1);
            }
}

// Weight gradient dW (G*R*P x F) = sum over steps of s_t^T X_t, s_t in compact form
// (steps*N x Kc, Kc = G*(R-S)*P, Kr = (R-S)*P per region) with index (steps x G*(R-S)).
// A block takes `regions_per_block` whole regions (their compact columns, <= C::BM, starting
// at a 16-byte boundary) and C::BN columns of F. Each step it multiplies only the kept slices
// (the compact columns) by X_t and adds the result into the rows of those slices in a
// shared-memory accumulator holding every row of its regions. The tiles run through the steps
// without a break, so the pipeline never drains. gridDim.z > 1 splits the steps over blocks
// that add their sums into dW (which must hold zeros first): a block's tiles run one after
// another, so short chains keep more SMs busy.
// Dynamic shared memory: the accumulator (regions_per_block*R*P x (C::BN + 8) floats; the pad
// makes the float2 adds conflict-free), then C::STAGES stages of wgrad_stage<T, C>() elements.
// SUM: common.cuh's WgradSum. KEEP_ALL and MASKED have no accumulator; MASKED keeps which
// halves of each 16-byte piece its steps kept (kept_halves) after the stages.
template <typename T, class C> __host__ __device__ constexpr int wgrad_stage() {
    return C::BK * (C::BM + Layout<T>::KMAJOR_PAD) + C::BK * (C::BN + Layout<T>::KMAJOR_PAD);
}

template <typename T, class C, WgradSum SUM>
__device__ void region_wgrad(const T* vals, const T* X, const int* index, int P, int R, int S,
                             int steps, int N, int F, int Kc, int regions_per_block, float* dW) {
    constexpr int KS = Mma<T>::K, CH = Layout<T>::CHUNK, ACC_STRIDE = C::BN + 8;
    constexpr int LDA = C::BM + Layout<T>::KMAJOR_PAD, LDB = C::BN + Layout<T>::KMAJOR_PAD;
    constexpr int A_CHUNKS = Copies<T, C>::A, B_CHUNKS = Copies<T, C>::B;
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, t = lane & 3;
    int keep = R - S, Kr = keep * P, RP = R * P, G = Kc / Kr;
    int first_region = blockIdx.y * regions_per_block;
    int regions = min(regions_per_block, G - first_region);
    int m0 = first_region * Kr, m_count = regions * Kr, n0 = blockIdx.x * C::BN;
    int acc_rows = regions * RP;
    float* acc = reinterpret_cast<float*>(shared_bytes);
    constexpr bool KEEP_ALL = SUM != SHARED_ACCUMULATOR;  // sums in registers
    constexpr int PIECES = C::BM / CH;
    T* stages = reinterpret_cast<T*>(KEEP_ALL ? acc : acc + regions_per_block * RP * ACC_STRIDE);
    int* halves = reinterpret_cast<int*>(stages + C::STAGES * wgrad_stage<T, C>());
    int wm = (warp / C::WARPS_N) * C::WM, wn = (warp % C::WARPS_N) * C::WN;
    int steps_per_split = (steps + gridDim.z - 1) / gridDim.z;
    int first_step = blockIdx.z * steps_per_split;
    int k_tiles = (N + C::BK - 1) / C::BK;
    int my_steps = max(0, min(steps - first_step, steps_per_split)), tiles = my_steps * k_tiles;
    if constexpr (!KEEP_ALL)
        for (int i = tid; i < acc_rows * ACC_STRIDE; i += C::THREADS) acc[i] = 0.f;
    if constexpr (SUM == MASKED)
        kept_halves<CH, PIECES, C::THREADS>(index, P, Kc, m0, first_step, my_steps, halves);
    auto issue = [&](int tile) {
        T* As = stages + (tile % C::STAGES) * wgrad_stage<T, C>();
        T* Bs = As + C::BK * LDA;
        int s = first_step + tile / k_tiles, k0 = (tile % k_tiles) * C::BK;
        const T* v = vals + (size_t)s * N * Kc;
        const T* x = X + (size_t)s * N * F;
#pragma unroll
        for (int i = 0; i < A_CHUNKS; ++i) {
            int e = (tid + i * C::THREADS) * CH, k = e / C::BM, m = e % C::BM;
            if constexpr (SUM == MASKED) {
                int code = k0 + k < N ? halves[(tile / k_tiles) * PIECES + m / CH] : 0;
                copy_masked(&As[k * LDA + m], v + (size_t)(k0 + k) * Kc + m0 + m, vals, code);
                continue;
            }
            int bytes = k0 + k < N ? max(0, min(CH, m_count - m)) * (int)sizeof(T) : 0;
            copy_async16(&As[k * LDA + m], bytes ? v + (size_t)(k0 + k) * Kc + m0 + m : vals,
                         bytes);
        }
#pragma unroll
        for (int i = 0; i < B_CHUNKS; ++i) {
            int e = (tid + i * C::THREADS) * CH, k = e / C::BN, n = e % C::BN;
            bool inside = k0 + k < N && n0 + n < F;
            copy_async16(&Bs[k * LDB + n], inside ? x + (size_t)(k0 + k) * F + n0 + n : X,
                         inside ? 16 : 0);
        }
    };
    float c[C::MT][C::NT][4];
#pragma unroll
    for (int s = 0; s < C::STAGES - 1; ++s) {
        if (s < tiles) issue(s);
        copy_async_commit();
    }
    bool active = wm < m_count;
    for (int tile = 0; tile < tiles; ++tile) {
        int s = first_step + tile / k_tiles, k_tile = tile % k_tiles;
        copy_async_wait<C::STAGES - 2>();
        // The tile has landed for all; its stage's previous reader is done; the previous
        // step's accumulator additions (to rows another warp may add to now) are visible.
        __syncthreads();
        if (tile + C::STAGES - 1 < tiles) issue(tile + C::STAGES - 1);
        copy_async_commit();
        if ((KEEP_ALL ? tile : k_tile) == 0) {
#pragma unroll
            for (int mt = 0; mt < C::MT; ++mt)
#pragma unroll
                for (int nt = 0; nt < C::NT; ++nt)
#pragma unroll
                    for (int e = 0; e < 4; ++e) c[mt][nt][e] = 0.f;
        }
        if (active) {
            const T* As = stages + (tile % C::STAGES) * wgrad_stage<T, C>();
            const T* Bs = As + C::BK * LDA;
#pragma unroll
            for (int kk = 0; kk < C::BK; kk += KS) {
                unsigned a[C::MT][4], b[C::NT][2];
#pragma unroll
                for (int mt = 0; mt < C::MT; ++mt)
                    Mma<T>::frag_a_kmajor(a[mt], &As[kk * LDA + wm + 16 * mt], LDA, lane);
#pragma unroll
                for (int nt = 0; nt < C::NT; nt += 2)
                    Mma<T>::frag_b2_kmajor(b[nt], b[nt + 1], &Bs[kk * LDB + wn + 8 * nt], LDB, lane);
#pragma unroll
                for (int mt = 0; mt < C::MT; ++mt)
#pragma unroll
                    for (int nt = 0; nt < C::NT; ++nt) Mma<T>::mma(c[mt][nt], a[mt], b[nt]);
            }
            if (!KEEP_ALL && k_tile == k_tiles - 1) {  // step s done: add into its kept rows
                const int* idx = index + (size_t)s * (Kc / P);
#pragma unroll
                for (int mt = 0; mt < C::MT; ++mt)
#pragma unroll
                    for (int half = 0; half < 2; ++half) {
                        int m = wm + 16 * mt + g + 8 * half;
                        if (m >= m_count) continue;
                        float* row = kept_row(acc, idx, m0 + m, P, R, first_region,
                                              ACC_STRIDE) + wn + 2 * t;
#pragma unroll
                        for (int nt = 0; nt < C::NT; ++nt)
                            add_pair(row + 8 * nt, c[mt][nt][2 * half], c[mt][nt][2 * half + 1]);
                    }
            }
        }
    }
    if constexpr (KEEP_ALL) {
        if (tiles == 0 || !active) return;  // a step split with no steps: nothing to add
#pragma unroll
        for (int mt = 0; mt < C::MT; ++mt)
#pragma unroll
            for (int nt = 0; nt < C::NT; ++nt)
#pragma unroll
                for (int half = 0; half < 2; ++half) {
                    int m = wm + 16 * mt + g + 8 * half, col = n0 + wn + 8 * nt + 2 * t;
                    if (m < m_count && col < F)
                        store_pair(dW + (size_t)(m0 + m) * F + col, c[mt][nt][2 * half],
                                   c[mt][nt][2 * half + 1], gridDim.z > 1);
                }
        return;
    }
    __syncthreads();
    store_accumulator<C::THREADS, C::BN>(acc, acc_rows, ACC_STRIDE,
                                         dW + (size_t)first_region * RP * F + n0, F, F - n0,
                                         gridDim.z > 1);
}

// Per-step column sums of compact values scattered to their gate columns:
// out[s][index[s][k / P] * P + k % P] = sum_n s_t[n][k] for each compact column k (out holds
// zeros first: dropped columns stay 0). A thread sums 4 adjacent compact columns (one slice
// row, as 4 | P) over every 8th row, so a warp reads 128 whole columns of each row; block:
// 32 x 8 threads, the 8 row lanes added in a fixed order.
template <typename T>
__device__ void step_column_sums(const T* vals, const int* index, int P, int N, int Kc,
                                 int cols, float* out) {
    __shared__ float part[8][4 * 32 + 1];
    int k = 4 * (blockIdx.x * 32 + threadIdx.x), s = blockIdx.y;
    float sum[4] = {0.f, 0.f, 0.f, 0.f};
    if (k < Kc) {
        const T* v = vals + (size_t)s * N * Kc + k;
#pragma unroll 4
        for (int n = threadIdx.y; n < N; n += 8) {
            float row[4];
            load4_floats(v + (size_t)n * Kc, row);
#pragma unroll
            for (int i = 0; i < 4; ++i) sum[i] += row[i];
        }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) part[threadIdx.y][4 * threadIdx.x + i] = sum[i];
    __syncthreads();
    int column = threadIdx.y * 32 + threadIdx.x;  // of the block's 128: one a thread to write
    k = 4 * blockIdx.x * 32 + column;
    if (threadIdx.y < 4 && k < Kc) {
        float total = part[0][column];
        for (int r = 1; r < 8; ++r) total += part[r][column];
        out[(size_t)s * cols + index[(size_t)s * (Kc / P) + k / P] * P + k % P] = total;
    }
}

// The tilings in use (products.py mirrors them): gather_mm's 128-row tiles wherever they stay
// inside one index group (one step's N rows), 64-row tiles for N = 64.
typedef Tiles<64, 128, 32, 2, 4, 4> SmallTiles;
typedef Tiles<128, 128, 32, 2, 4, 3> LargeTiles;
typedef Tiles<64, 128, 32, 2, 4, 3> WgradTiles;
// With no shared accumulator (KEEP_ALL) larger warp tiles fit: 1.4-1.5x faster in float32
// (benchmarks/tile_sweep.py --wgrad; results/tile_sweep_wgrad.json).
typedef Tiles<128, 256, 32, 2, 4, 3> WgradKeepAllTiles;

#define GATHER_ENTRY(NAME, T, OutT, TILES)                                                    \
    extern "C" __global__ void __launch_bounds__(TILES::THREADS) NAME(                        \
        const T* A, const T* B, const int* index, int P, int rows_per_group, OutT* out, int M, \
        int Kc, int F) {                                                                      \
        gather_mm<T, OutT, TILES, false>(A, B, index, P, rows_per_group, out, M, Kc, F, Kc,   \
                                         StepSelection{});                                    \
    }
// The per-step product of coarse with its selection (one step: M rows, split-K into fp32 out).
#define SELECT_GATHER_ENTRY(NAME, T, TILES)                                                   \
    extern "C" __global__ void __launch_bounds__(TILES::THREADS) NAME(                        \
        const T* dnet, const T* B, int P, float* out, int M, int Kc, int F, int width,         \
        const float* partial, int chunks, int R, int S, int* index, int* slot, float* energy,  \
        T* values) {                                                                          \
        gather_mm<T, float, TILES, true>(dnet, B, nullptr, P, M, out, M, Kc, F, width,        \
                                         step_selection(partial, chunks, width / P, R, R - S, \
                                                        index, slot, energy, values));        \
    }
#define GATHER_ENTRIES(TILING, TILES)                                                         \
    GATHER_ENTRY(gather_mm_##TILING##_float32_out_float32, float, float, TILES)               \
    GATHER_ENTRY(gather_mm_##TILING##_bfloat16_out_float32, bf16, float, TILES)               \
    GATHER_ENTRY(gather_mm_##TILING##_bfloat16_out_bfloat16, bf16, bf16, TILES)               \
    SELECT_GATHER_ENTRY(select_gather_mm_##TILING##_float32, float, TILES)                    \
    SELECT_GATHER_ENTRY(select_gather_mm_##TILING##_bfloat16, bf16, TILES)
GATHER_ENTRIES(small, SmallTiles)
GATHER_ENTRIES(large, LargeTiles)

// (MASKED reads slot where the others read index.)
#define WGRAD_ENTRY(NAME, T, TILES, SUM)                                                       \
    extern "C" __global__ void __launch_bounds__(TILES::THREADS) NAME(                         \
        const T* vals, const T* X, const int* index, const int* slot, int P, int R, int S,     \
        int steps, int N, int F, int Kc, int regions_per_block, float* dW) {                   \
        region_wgrad<T, TILES, SUM>(vals, X, SUM == MASKED ? slot : index, P, R, S, steps, N,  \
                                    F, Kc, regions_per_block, dW);                             \
    }
WGRAD_ENTRY(region_wgrad_float32, float, WgradTiles, SHARED_ACCUMULATOR)
WGRAD_ENTRY(region_wgrad_bfloat16, bf16, WgradTiles, SHARED_ACCUMULATOR)
WGRAD_ENTRY(region_wgrad_keep_all_float32, float, WgradKeepAllTiles, KEEP_ALL)
WGRAD_ENTRY(region_wgrad_keep_all_bfloat16, bf16, WgradKeepAllTiles, KEEP_ALL)
WGRAD_ENTRY(region_wgrad_masked_float32, float, WgradKeepAllTiles, MASKED)
WGRAD_ENTRY(region_wgrad_masked_bfloat16, bf16, WgradKeepAllTiles, MASKED)

#define COLSUM_ENTRY(NAME, T)                                                                  \
    extern "C" __global__ void NAME(const T* vals, const int* index, int P, int N, int Kc,      \
                                    int cols, float* out) {                                    \
        step_column_sums<T>(vals, index, P, N, Kc, cols, out);                                  \
    }
COLSUM_ENTRY(step_column_sums_float32, float)
COLSUM_ENTRY(step_column_sums_bfloat16, bf16)
