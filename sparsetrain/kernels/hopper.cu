// Matrix products on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a; bf16 operands,
// fp32 accumulate), for the same indexed products as products.cu's gather_mm and region_wgrad.
// products.py launches these where the GPU is sm_90 and the values are bf16 (and gather_mm's
// 128-row tiles fit in an index group); elsewhere the mma.sync kernels. float32 products with
// every slice kept run here too, on tf32 (kmajor_mm_tma, at the end).
//
// Shared tiles use wgmma's 128-byte swizzle: a tile row of 64 bf16 (128 bytes) keeps its eight
// 16-byte chunks, chunk c of row r at position c ^ (r % 8), so the eight rows of an atom
// (1024 bytes) spread every chunk column over all banks, for the cp.async writes and for the
// tensor cores' reads alike. A: BM rows of 64 k (K-major). B: two atoms side by side in N, each
// 64 k-rows of 64 n (MN-major, "transposed"). A descriptor names the start, the swizzle, the
// stride between 8-row groups (1024 bytes) and, for an MN-major operand, between 64-wide
// halves in M or N (leading; a K-major operand's rows are one atom wide, so it has none).

__device__ __forceinline__ unsigned long long tile_descriptor(const void* tile, int leading_bytes,
                                                              int stride_bytes) {
    unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(tile));
    return (unsigned long long)((address & 0x3FFFF) >> 4)
         | ((unsigned long long)((leading_bytes >> 4) & 0x3FFF) << 16)
         | ((unsigned long long)((stride_bytes >> 4) & 0x3FFF) << 32)
         | (1ull << 62);  // 128-byte swizzle
}

// d (64 x BN per warpgroup, fp32; BN 128 or 64) += A (64 x 16; K-major, or M-major with
// TRANSPOSE_A) . B (16 x BN, N-major).
// accumulate 0: d = A . B (what d held is ignored, so a new sum needs no zeroing).
#define WGMMA_D8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), \
                    "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
// A 64 x 128 warpgroup accumulator: its 64 operands, and their names in the instruction.
#define WGMMA_D64 WGMMA_D8(0), WGMMA_D8(8), WGMMA_D8(16), WGMMA_D8(24), WGMMA_D8(32), \
                  WGMMA_D8(40), WGMMA_D8(48), WGMMA_D8(56)
#define WGMMA_ACCUMULATORS_64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
template <int TRANSPOSE_A>
__device__ __forceinline__ void wgmma_64x128(float d[64], unsigned long long a,
                                             unsigned long long b, int accumulate = 1) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %67, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " WGMMA_ACCUMULATORS_64 ", %64, %65, p, 1, 1, %66, 1;\n}\n"
        : WGMMA_D64
        : "l"(a), "l"(b), "n"(TRANSPOSE_A), "r"(accumulate));
}
template <int TRANSPOSE_A>
__device__ __forceinline__ void wgmma_64x64(float d[32], unsigned long long a,
                                            unsigned long long b, int accumulate = 1) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %35, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, %34, 1;\n}\n"
        : WGMMA_D8(0), WGMMA_D8(8), WGMMA_D8(16), WGMMA_D8(24)
        : "l"(a), "l"(b), "n"(TRANSPOSE_A), "r"(accumulate));
}
// d (64 x 128 per warpgroup, fp32) += A (64 x 8) . B (8 x 128), float32 operands read as tf32.
// tf32 wgmma reads both operands K-major only (no transpose bits, unlike bf16's).
__device__ __forceinline__ void wgmma_64x128_tf32(float d[64], unsigned long long a,
                                                  unsigned long long b, int accumulate = 1) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 " WGMMA_ACCUMULATORS_64 ", %64, %65, p, 1, 1;\n}\n"
        : WGMMA_D64
        : "l"(a), "l"(b), "r"(accumulate));
}
#undef WGMMA_ACCUMULATORS_64
#undef WGMMA_D64
#undef WGMMA_D8
// The one of the two for BN.
template <int BN, int TRANSPOSE_A>
__device__ __forceinline__ void wgmma_64xn(float* d, unsigned long long a, unsigned long long b,
                                           int accumulate = 1) {
    if constexpr (BN == 128) wgmma_64x128<TRANSPOSE_A>(d, a, b, accumulate);
    else wgmma_64x64<TRANSPOSE_A>(d, a, b, accumulate);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int PENDING> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(PENDING) : "memory");
}
// cp.async wrote the tiles through the generic proxy; wgmma reads them through the async one.
__device__ __forceinline__ void fence_async_shared() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// A warpgroup's wgmma accumulator of 64 rows x COLUMNS, d as the instruction lays it out (this
// thread's values d[4i + 2h], d[4i + 2h + 1] at row `row` + 8h, columns `col` + 8i and + 1;
// row = the tile's first + 16 * warp + lane / 4, col = the tile's first + 2 * (lane % 4)),
// stored into out (`rows` x F, row-major) where inside it; add: red.add into float32 out.
template <int COLUMNS, typename OutT>
__device__ __forceinline__ void store_wgmma_tile(const float* d, OutT* out, int row, int col,
                                                 int rows, int F, bool add) {
#pragma unroll
    for (int i = 0; i < COLUMNS / 8; ++i)
        if (col + 8 * i < F)
#pragma unroll
            for (int half = 0; half < 2; ++half)
                if (row + 8 * half < rows)
                    store_pair(out + (size_t)(row + 8 * half) * F + col + 8 * i,
                               d[4 * i + 2 * half], d[4 * i + 2 * half + 1], add);
}

// The copy-engine-fed kernels' tile of 128 rows x 128 * HALVES at (m0, n0): this thread's
// warpgroup (of two, 64 rows each) stores its HALVES accumulators of 64 x 128 as above.
template <int HALVES, typename OutT>
__device__ __forceinline__ void store_two_warpgroup_tile(const float (*d)[64], OutT* out, int m0,
                                                         int n0, int rows, int F, bool add) {
    int tid = threadIdx.x, group = tid / 128, warp = (tid / 32) % 4, lane = tid % 32;
#pragma unroll
    for (int half = 0; half < HALVES; ++half)
        store_wgmma_tile<128>(d[half], out, m0 + group * 64 + warp * 16 + lane / 4,
                              n0 + half * 128 + 2 * (lane % 4), rows, F, add);
}

// Element offset of chunk c (8 elements) of row r in a swizzled run of 128-byte rows.
__device__ __forceinline__ int swizzled(int r, int c) { return r * 64 + ((c ^ (r % 8)) * 8); }

// Hopper's bulk tensor copies (TMA): one thread asks the copy engine for a whole box of a
// tensor, which lands in shared memory in the 128-byte swizzle above and completes a
// transaction count on an mbarrier. A TensorMap is cuTensorMapEncodeTiled's CUtensorMap
// (_tensor_maps.py), passed by value as a __grid_constant__ parameter: the copies read it
// from parameter space.
struct __align__(64) TensorMap {
    unsigned long long opaque[16];
};
constexpr int RING_BYTES = 1024;  // a ring's mbarriers, before the 1024-byte aligned stages
__device__ __forceinline__ void barrier_init(unsigned long long* barrier, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n"
                 :: "r"(smem_address(barrier)), "r"(count));
}
__device__ __forceinline__ void barrier_arrive(unsigned long long* barrier) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n"
                 :: "r"(smem_address(barrier)) : "memory");
}
// Arrives and expects `bytes` more of bulk copies before the phase completes.
__device__ __forceinline__ void barrier_expect(unsigned long long* barrier, int bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n"
                 :: "r"(smem_address(barrier)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void barrier_wait(unsigned long long* barrier, int parity) {
    unsigned done = 0;
    while (!done)
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(smem_address(barrier)), "r"(parity) : "memory");
}
// The box of `map` at (c0, c1, c2), innermost first, into `shared`; zeros past the tensor.
__device__ __forceinline__ void bulk_load(void* shared, const TensorMap& map, int c0, int c1,
                                          int c2, unsigned long long* barrier) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3, %4}], [%5];\n"
                 :: "r"(smem_address(shared)), "l"(reinterpret_cast<unsigned long long>(&map)),
                    "r"(c0), "r"(c1), "r"(c2), "r"(smem_address(barrier))
                 : "memory");
}

// out (M x F) = A (M x Kc) . B[kept rows] as products.cu's gather_mm (same index rule, split-K
// over gridDim.z with red adds into fp32 out; SELECT as there). WGS x WG_N warpgroups of 64
// rows x 128 columns each (those in a row share the A tile, in a column the B tile), BK = 64
// (one 128-byte row), STAGES tiles in flight. Dynamic shared memory: STAGES stages of
// hopper_stage<WGS, WG_N>() elements, then the block's index entries.
template <int WGS, int WG_N> __host__ __device__ constexpr int hopper_stage() {
    return 64 * WGS * 64 + 64 * 128 * WG_N;
}

template <typename OutT, int WGS, int WG_N, int STAGES, bool SELECT>
__device__ void gather_mm_hopper(const bf16* A, const bf16* B, const int* index, int P,
                                 int rows_per_group, OutT* out, int M, int Kc, int F, int lda,
                                 StepSelection selection) {
    constexpr int BM = 64 * WGS, BN = 128 * WG_N, BK = 64, THREADS = 128 * WGS * WG_N;
    constexpr int A_CHUNKS = BM * BK / 8 / THREADS, B_CHUNKS = BK * BN / 8 / THREADS;
    constexpr int N_CHUNKS = BN / 8;
    constexpr int STAGE = hopper_stage<WGS, WG_N>();
    extern __shared__ __align__(1024) unsigned char shared_bytes[];
    bf16* stages = reinterpret_cast<bf16*>(shared_bytes);
    int tid = threadIdx.x, group = tid / 128, warp = (tid / 32) % 4, lane = tid % 32;
    int group_m = group / WG_N, group_n = group % WG_N;
    int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    int* first_rows = reinterpret_cast<int*>(stages + STAGES * STAGE);
    wait_for_previous_kernel();  // the step loop's: A (and the selection) just written
    const int* idx = SELECT ? nullptr : index + (size_t)(m0 / rows_per_group) * (Kc / P);
    KShare share = gather_rows<BK, SELECT>(idx, selection, P, Kc, first_rows);
    int k_begin = share.begin, k_end = share.end, k_tiles = share.tiles;
    // P a power of two (always under SELECT): shifts, not divisions, in every B chunk's lookup
    int first_slice = share.first_slice, p_shift = __ffs(P) - 1;
    bool p_power = SELECT || (P & (P - 1)) == 0;
    auto issue = [&](int tile) {
        bf16* As = stages + (tile % STAGES) * STAGE;
        bf16* Bs = As + BM * BK;
        int k0 = k_begin + tile * BK;
        int k_chunk = tid % 8, k = k0 + 8 * k_chunk;  // the same for all of a thread's A chunks
        ChunkColumns columns{};
        if constexpr (SELECT)
            if (k < k_end) columns = chunk_columns<bf16>(first_rows, first_slice, k, P, p_shift);
#pragma unroll
        for (int i = 0; i < A_CHUNKS; ++i) {
            int m = (i * THREADS + tid) / 8;
            bool inside = m0 + m < M && k < k_end;
            const bf16* row = A + (size_t)min(m0 + m, M - 1) * lda;
            if constexpr (SELECT)
                copy_selected(As + swizzled(m, k_chunk), row, columns, inside);
            else
                copy_async16(As + swizzled(m, k_chunk), inside ? row + k : A, inside ? 16 : 0);
        }
#pragma unroll
        for (int i = 0; i < B_CHUNKS; ++i) {
            int e = i * THREADS + tid, k = e / N_CHUNKS, n_chunk = e % N_CHUNKS;
            int kk = k0 + k, n = n0 + 8 * n_chunk;
            bool inside = kk < k_end && n < F;
            int b_row = p_power ? first_rows[(kk >> p_shift) - first_slice] + (kk & (P - 1))
                               : first_rows[kk / P - first_slice] + kk % P;
            const bf16* source = inside ? B + (size_t)b_row * F + n : B;
            copy_async16(Bs + (n_chunk / 8) * BK * 64 + swizzled(k, n_chunk % 8), source,
                         inside ? 16 : 0);
        }
    };
    float d[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) d[i] = 0.f;
    // Loads run STAGES-2 tiles ahead: a stage is refilled only once the wgmma two tiles back,
    // the last that read it, has completed in both warpgroups (wait_group 1, then a barrier).
#pragma unroll
    for (int s = 0; s < STAGES - 2; ++s) {
        if (s < k_tiles) issue(s);
        copy_async_commit();
    }
    for (int tile = 0; tile < k_tiles; ++tile) {
        __syncthreads();
        if (tile + STAGES - 2 < k_tiles) issue(tile + STAGES - 2);
        copy_async_commit();
        copy_async_wait<STAGES - 2>();
        fence_async_shared();
        __syncthreads();
        if constexpr (SELECT)
            if (selection.values) {
                int k_chunk = tid % 8, k = k_begin + tile * BK + 8 * k_chunk;
#pragma unroll
                for (int i = 0; i < A_CHUNKS; ++i) {
                    int m = (i * THREADS + tid) / 8;
                    if (m0 + m < M && k < k_end)
                        store_compact(selection, Kc, m0 + m, k, stages + (tile % STAGES) * STAGE
                                                                + swizzled(m, k_chunk));
                }
            }
        const bf16* As = stages + (tile % STAGES) * STAGE + group_m * 64 * BK;
        const bf16* Bs = stages + (tile % STAGES) * STAGE + BM * BK + group_n * 2 * BK * 64;
        wgmma_fence();
#pragma unroll
        for (int j = 0; j < BK / 16; ++j)  // k16 step j: 32 bytes into A's rows, 16 rows of B
            wgmma_64x128<0>(d, tile_descriptor(As + 16 * j, 16, 1024),
                         tile_descriptor(Bs + 16 * 64 * j, BK * 128, 1024));
        wgmma_commit();
        wgmma_wait<1>();
    }
    wgmma_wait<0>();
    let_next_kernel_launch();
    store_wgmma_tile<128>(d, out, m0 + group_m * 64 + warp * 16 + lane / 4,
                          n0 + group_n * 128 + 2 * (lane % 4), M, F, gridDim.z > 1);
}

// Weight gradient as products.cu's region_wgrad (same arguments, accumulator and step split),
// on wgmma: WG_M x WG_N warpgroups per block, 64 * WG_M compact columns x WG_N * WG_BN columns
// of F, 64 rows of N per tile. Both operands are read MN-major: A = s_t^T straight from the
// compact values (64 compact columns = one 128-byte swizzled row per row of N, WG_M such
// atoms side by side), B = X_t as in gather_mm_hopper. Warpgroup (i, j) multiplies the i-th
// 64 compact columns of A by the j-th WG_BN columns of B: warpgroups in a row share the A
// tile, in a column the B tile, so a block reads fewer bytes per product than one warpgroup.
// At the end of each step a warpgroup waits for its products and adds them into the shared
// accumulator rows of that step's kept slices (its own rows and columns). Dynamic shared
// memory: STAGES stages of wgrad_hopper_stage() elements (1024-byte aligned for the swizzle),
// then the accumulator (rows x (BN + 8) floats).
// SUM: common.cuh's WgradSum. MASKED's dynamic shared memory holds, after the stages, which
// halves of each 8-column piece each of its steps kept (kept_halves).
template <int BM, int BN> __host__ __device__ constexpr int wgrad_hopper_stage() {
    return 64 * BM + 64 * BN;
}

template <int WG_BN, int WG_M, int WG_N, int STAGES, bool ALTERNATE, WgradSum SUM>
__device__ void region_wgrad_hopper(const bf16* vals, const bf16* X, const int* index,
                                    const int* slot, int P, int R, int S, int steps, int N,
                                    int F, int Kc, int regions_per_block, float* dW) {
    constexpr int BM = 64 * WG_M, BN = WG_BN * WG_N, BK = 64, THREADS = 128 * WG_M * WG_N;
    constexpr int ACC_STRIDE = BN + 8, M_CHUNKS = BM / 8, N_CHUNKS = BN / 8;
    constexpr int A_CHUNKS = BK * BM / 8 / THREADS, B_CHUNKS = BK * BN / 8 / THREADS;
    constexpr int STAGE = wgrad_hopper_stage<BM, BN>();
    static_assert(THREADS % M_CHUNKS == 0, "a thread's A chunks share their columns");
    extern __shared__ __align__(1024) unsigned char shared_bytes[];
    bf16* stages = reinterpret_cast<bf16*>(shared_bytes);
    float* acc = reinterpret_cast<float*>(stages + STAGES * STAGE);
    int tid = threadIdx.x, group = tid / 128, warp = (tid / 32) % 4, lane = tid % 32;
    int group_m = group / WG_N, group_n = group % WG_N;
    int keep = R - S, Kr = keep * P, RP = R * P, G = Kc / Kr;
    int first_region = blockIdx.y * regions_per_block;
    int regions = min(regions_per_block, G - first_region);
    int m0 = first_region * Kr, m_count = regions * Kr, n0 = blockIdx.x * BN;
    int acc_rows = regions * RP;
    int steps_per_split = (steps + gridDim.z - 1) / gridDim.z;
    int first_step = blockIdx.z * steps_per_split;
    int k_tiles = (N + BK - 1) / BK;
    int my_steps = max(0, min(steps - first_step, steps_per_split)), tiles = my_steps * k_tiles;
    if constexpr (SUM == SHARED_ACCUMULATOR)
        for (int i = tid; i < acc_rows * ACC_STRIDE; i += THREADS) acc[i] = 0.f;
    int* halves = reinterpret_cast<int*>(acc);  // MASKED: kept_halves, so no load looks up
    if constexpr (SUM == MASKED)
        kept_halves<8, M_CHUNKS, THREADS>(slot, P, Kc, m0, first_step, my_steps, halves);
    auto issue = [&](int tile) {
        bf16* As = stages + (tile % STAGES) * STAGE;
        bf16* Bs = As + BK * BM;
        int s = first_step + tile / k_tiles, k0 = (tile % k_tiles) * BK;
        const bf16* v = vals + (size_t)s * N * Kc;
        const bf16* x = X + (size_t)s * N * F;
        // MASKED: a thread's A chunks share their columns (THREADS is a multiple of M_CHUNKS)
        int tile_halves =
            SUM == MASKED ? halves[(tile / k_tiles) * M_CHUNKS + tid % M_CHUNKS] : 0;
#pragma unroll
        for (int i = 0; i < A_CHUNKS; ++i) {
            int e = i * THREADS + tid, k = e / M_CHUNKS, m_chunk = e % M_CHUNKS, m = 8 * m_chunk;
            bf16* to = As + (m_chunk / 8) * BK * 64 + swizzled(k, m_chunk % 8);
            if constexpr (SUM == MASKED) {
                copy_masked(to, v + (size_t)(k0 + k) * Kc + m0 + m, vals,
                            k0 + k < N ? tile_halves : 0);
            } else {
                int bytes = k0 + k < N ? max(0, min(8, m_count - m)) * 2 : 0;
                copy_async16(to, bytes ? v + (size_t)(k0 + k) * Kc + m0 + m : vals, bytes);
            }
        }
#pragma unroll
        for (int i = 0; i < B_CHUNKS; ++i) {
            int e = i * THREADS + tid, k = e / N_CHUNKS, n_chunk = e % N_CHUNKS;
            int n = n0 + 8 * n_chunk;
            bool inside = k0 + k < N && n < F;
            copy_async16(Bs + (n_chunk / 8) * BK * 64 + swizzled(k, n_chunk % 8),
                         inside ? x + (size_t)(k0 + k) * F + n : X, inside ? 16 : 0);
        }
    };
    // With ALTERNATE, steps alternate between two accumulators, so that a step's products are
    // added into the shared accumulator while the next step's run; else each step waits for
    // its products and adds them (each step's first product overwrites).
    float d_even[WG_BN / 2], d_odd[WG_BN / 2];
    auto add_step = [&](const float* d, int s) {  // into the rows of step s's kept slices
        const int* idx = index + (size_t)s * (Kc / P);
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            int m = group_m * 64 + warp * 16 + lane / 4 + 8 * half;
            if (m < m_count) {
                float* row = kept_row(acc, idx, m0 + m, P, R, first_region, ACC_STRIDE)
                             + group_n * WG_BN + 2 * (lane % 4);
#pragma unroll
                for (int i = 0; i < WG_BN / 8; ++i)
                    add_pair(row + 8 * i, d[4 * i + 2 * half], d[4 * i + 2 * half + 1]);
            }
        }
    };
    auto add_pending = [&](int s) {
        if ((s - first_step) % 2 == 0) add_step(d_even, s);
        else add_step(d_odd, s);
    };
#pragma unroll
    for (int s = 0; s < STAGES - 2; ++s) {
        if (s < tiles) issue(s);
        copy_async_commit();
    }
    int pending = -1;  // the step whose products are still to be added
    for (int tile = 0; tile < tiles; ++tile) {
        int s = first_step + tile / k_tiles, k_tile = tile % k_tiles;
        // Also orders one step's accumulator additions before the next step's.
        __syncthreads();
        if (tile + STAGES - 2 < tiles) issue(tile + STAGES - 2);
        copy_async_commit();
        copy_async_wait<STAGES - 2>();
        fence_async_shared();
        __syncthreads();
        const bf16* As = stages + (tile % STAGES) * STAGE;
        const bf16* Bs = As + BK * BM + group_n * (WG_BN / 64) * BK * 64;  // its 64-wide atoms
        As += group_m * BK * 64;
        auto multiply = [&](float* d) {
#pragma unroll
            for (int j = 0; j < BK / 16; ++j)  // k16 step j: 16 rows of both tiles
                wgmma_64xn<WG_BN, 1>(d, tile_descriptor(As + 16 * 64 * j, BK * 128, 1024),
                                     tile_descriptor(Bs + 16 * 64 * j, BK * 128, 1024),
                                     (SUM != SHARED_ACCUMULATOR ? tile : k_tile) > 0 || j > 0);
        };
        wgmma_fence();
        if (ALTERNATE && (s - first_step) % 2 == 1) multiply(d_odd);
        else multiply(d_even);
        wgmma_commit();
        if constexpr (SUM != SHARED_ACCUMULATOR) {
            wgmma_wait<1>();
        } else if constexpr (ALTERNATE) {
            wgmma_wait<1>();  // the group before this one is done
            if (pending >= 0) {
                add_pending(pending);
                pending = -1;
            }
            if (k_tile == k_tiles - 1) pending = s;
        } else if (k_tile < k_tiles - 1) {
            wgmma_wait<1>();
        } else {
            wgmma_wait<0>();  // step s done: add it now
            add_step(d_even, s);
        }
    }
    wgmma_wait<0>();
    if constexpr (SUM != SHARED_ACCUMULATOR) {
        if (tiles == 0) return;  // a step split with no steps: nothing to add
        store_wgmma_tile<WG_BN>(d_even, dW, m0 + group_m * 64 + warp * 16 + lane / 4,
                                n0 + group_n * WG_BN + 2 * (lane % 4), m0 + m_count, F,
                                gridDim.z > 1);
        return;
    }
    if (pending >= 0) add_pending(pending);
    __syncthreads();
    store_accumulator<THREADS, BN>(acc, acc_rows, ACC_STRIDE,
                                   dW + (size_t)first_region * RP * F + n0, F, F - n0,
                                   gridDim.z > 1);
}

#define HOPPER_ENTRY(NAME, OutT, WGS, WG_N, STAGES)                                             \
    extern "C" __global__ void __launch_bounds__(128 * WGS * WG_N) NAME(                       \
        const bf16* A, const bf16* B, const int* index, int P, int rows_per_group, OutT* out,   \
        int M, int Kc, int F) {                                                                 \
        gather_mm_hopper<OutT, WGS, WG_N, STAGES, false>(A, B, index, P, rows_per_group, out,   \
                                                         M, Kc, F, Kc, StepSelection{});        \
    }
// Two warpgroups, three stages (96 KB, so two blocks share an SM; 4-6 stages ran 15-25%
// slower, benchmarks/wgmma_probe.py --stages). Into float32, which only the split-K per-step
// product over a compact form uses: four stages, one block an SM, at the split that fills
// one wave (xl: 17.7 against 18.8 us a step, results/history/v21_gather_variants_h200.json).
HOPPER_ENTRY(gather_mm_hopper_bfloat16_out_float32, float, 2, 1, 4)
HOPPER_ENTRY(gather_mm_hopper_bfloat16_out_bfloat16, bf16, 2, 1, 3)
// (Four warpgroups, 128 x 256, one block an SM, ran 3-19% slower on dx:
// benchmarks/results/history/v8_gather_wide_tiles.json.)
// The per-step product of coarse with its selection, as products.cu's SELECT_GATHER_ENTRY
// (register-capped so that two blocks share an SM, as the plain entries do unasked).
extern "C" __global__ void __launch_bounds__(256, 2) select_gather_mm_hopper_bfloat16(
    const bf16* dnet, const bf16* B, int P, float* out, int M, int Kc, int F, int width,
    const float* partial, int chunks, int R, int S, int* index, int* slot, float* energy,
    bf16* values) {
    gather_mm_hopper<float, 2, 1, 3, true>(dnet, B, nullptr, P, M, out, M, Kc, F, width,
                                        step_selection(partial, chunks, width / P, R, R - S,
                                                       index, slot, energy, values));
}

// 64 x 128 on one warpgroup; 128 x 128 on two that share the B tile (for a small accumulator,
// as dense's); where the accumulator is large (coarse keeps twice the rows of its compact
// columns, and 128 columns would leave one block, four warps, per SM) either one warpgroup of
// 64 columns or two of 64 sharing each A tile (four stages: one block per SM either way, so
// the deeper ring costs no occupancy). The one-warpgroup kernels alternate accumulators (4-11%
// faster); the two-warpgroup ones ran 9-17% slower so and do not
// (benchmarks/results/history/v7_wgrad_alternate.json).
// BLOCKS: blocks per SM the registers must leave room for.
#define WGRAD_HOPPER_ENTRY(NAME, WG_BN, WG_M, WG_N, STAGES, ALTERNATE, SUM, BLOCKS)            \
    extern "C" __global__ void __launch_bounds__(128 * WG_M * WG_N, BLOCKS) NAME(              \
        const bf16* vals, const bf16* X, const int* index, const int* slot, int P, int R,       \
        int S, int steps, int N, int F, int Kc, int regions_per_block, float* dW) {             \
        region_wgrad_hopper<WG_BN, WG_M, WG_N, STAGES, ALTERNATE, SUM>(                         \
            vals, X, index, slot, P, R, S, steps, N, F, Kc, regions_per_block, dW);             \
    }
WGRAD_HOPPER_ENTRY(region_wgrad_hopper_bfloat16, 128, 1, 1, 3, true, SHARED_ACCUMULATOR, 1)
WGRAD_HOPPER_ENTRY(region_wgrad_hopper_tall_bfloat16, 128, 2, 1, 3, false, SHARED_ACCUMULATOR, 1)
WGRAD_HOPPER_ENTRY(region_wgrad_hopper_narrow_bfloat16, 64, 1, 1, 3, true, SHARED_ACCUMULATOR, 1)
WGRAD_HOPPER_ENTRY(region_wgrad_hopper_pair_bfloat16, 64, 1, 2, 4, false, SHARED_ACCUMULATOR, 1)
// Sums in registers: two warpgroups sharing the B tile, and two blocks an SM (96 KB of stages
// each; masked: plus its kept halves); or, where their blocks fill the GPU, four warpgroups
// (128 x 256: fewer bytes read per product) in one block an SM, four stages.
WGRAD_HOPPER_ENTRY(region_wgrad_hopper_keep_all_bfloat16, 128, 2, 1, 3, false, KEEP_ALL, 2)
WGRAD_HOPPER_ENTRY(region_wgrad_hopper_masked_bfloat16, 128, 2, 1, 3, false, MASKED, 2)
WGRAD_HOPPER_ENTRY(region_wgrad_hopper_keep_all_wide_bfloat16, 128, 2, 2, 4, false, KEEP_ALL, 1)
WGRAD_HOPPER_ENTRY(region_wgrad_hopper_masked_wide_bfloat16, 128, 2, 2, 4, false, MASKED, 1)

// The ring of a copy-engine-fed product: MULTIPLIERS threads (whole warpgroups) multiply and
// the warp after them loads, into STAGES stages of STAGE_BYTES at `stages` (the barriers at
// `ring`, RING_BYTES before). load(tile, stage, lane, barrier): the loading warp's copies of
// `tile`, after its first lane has armed `barrier` for STAGE_BYTES; multiply(tile, stage): a
// multiplying warpgroup's wgmmas on it (between the fence and the commit, which this adds). A
// stage's "full" barrier completes when its bytes have landed, "empty" when every multiplying
// thread has seen its wgmmas on it complete, so loads run up to STAGES tiles ahead with no
// block-wide barrier. Returns whether this thread multiplies (the loading warp is done).
template <int STAGES, int MULTIPLIERS, int STAGE_BYTES, typename Load, typename Multiply>
__device__ __forceinline__ bool tma_pipeline(unsigned char* ring, int tiles, Load load,
                                             Multiply multiply) {
    auto* full = reinterpret_cast<unsigned long long*>(ring);
    unsigned long long* empty = full + STAGES;
    int tid = threadIdx.x;
    if (tid == 0)
        for (int s = 0; s < STAGES; ++s) {
            barrier_init(full + s, 1);
            barrier_init(empty + s, MULTIPLIERS);
        }
    __syncthreads();
    if (tid >= MULTIPLIERS) {
        for (int tile = 0; tile < tiles; ++tile) {
            int stage = tile % STAGES;
            if (tile >= STAGES) barrier_wait(empty + stage, (tile / STAGES - 1) & 1);
            if (tid == MULTIPLIERS) barrier_expect(full + stage, STAGE_BYTES);
            __syncwarp();
            load(tile, stage, tid - MULTIPLIERS, full + stage);
        }
        return false;
    }
    for (int tile = 0; tile < tiles; ++tile) {
        int stage = tile % STAGES;
        barrier_wait(full + stage, (tile / STAGES) & 1);
        wgmma_fence();
        multiply(tile, stage);
        wgmma_commit();
        wgmma_wait<1>();  // tile - 1's wgmmas are done: its stage may be refilled
        if (tile > 0) barrier_arrive(empty + (tile - 1) % STAGES);
    }
    wgmma_wait<0>();
    return true;
}

// keep_all's weight gradient (dW = sum over steps of s_t^T x_t, every slice kept: S = 0) fed by
// the copy engine. Two warpgroups multiply, 64 dW rows each by BN = 128 * HALVES columns; the
// loading warp's first lane asks for each tile's boxes (A: two 64 x 64 atoms of s_t, B: BN / 64
// of x_t, from 3-d maps (columns, N, steps), so a tile never reads past its step). Where
// cp.async's loads cost every thread ~20 instructions per 16 bytes, a tile here costs one
// thread 2 + BN / 64 copies. Same grid and step split as region_wgrad_hopper's keep_all;
// dynamic shared memory: the ring's barriers (RING_BYTES), then the stages. dW in bf16 only
// where the steps are not split (each tile written once, by one block): the layer's dtype
// straight from the accumulators, with no float32 dW to convert after.
template <int HALVES, int STAGES, typename OutT>
__device__ void keep_all_wgrad_tma(const TensorMap& values_map, const TensorMap& x_map,
                                   int steps, int N, int F, int Kc, OutT* dW) {
    constexpr int BM = 128, BN = 128 * HALVES, BK = 64;
    constexpr int STAGE = BK * BM + BK * BN;
    extern __shared__ __align__(1024) unsigned char shared_bytes[];
    bf16* stages = reinterpret_cast<bf16*>(shared_bytes + RING_BYTES);
    int tid = threadIdx.x, group = tid / 128;
    int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    int steps_per_split = (steps + gridDim.z - 1) / gridDim.z;
    int first_step = blockIdx.z * steps_per_split;
    int my_steps = max(0, min(steps - first_step, steps_per_split));
    int k_tiles = (N + BK - 1) / BK, tiles = my_steps * k_tiles;
    float d[HALVES][64];
    auto load = [&](int tile, int stage, int loader, unsigned long long* full) {
        if (loader != 0) return;
        int s = first_step + tile / k_tiles, k0 = (tile % k_tiles) * BK;
        bf16* As = stages + stage * STAGE;
        bf16* Bs = As + BK * BM;
#pragma unroll
        for (int atom = 0; atom < BM / 64; ++atom)
            bulk_load(As + atom * BK * 64, values_map, m0 + 64 * atom, k0, s, full);
#pragma unroll
        for (int atom = 0; atom < BN / 64; ++atom)
            bulk_load(Bs + atom * BK * 64, x_map, n0 + 64 * atom, k0, s, full);
    };
    auto multiply = [&](int tile, int stage) {
        const bf16* As = stages + stage * STAGE + group * BK * 64;  // this warpgroup's 64 rows
        const bf16* Bs = stages + stage * STAGE + BK * BM;
#pragma unroll
        for (int j = 0; j < BK / 16; ++j)  // k16 step j: 16 rows of both tiles
#pragma unroll
            for (int half = 0; half < HALVES; ++half)
                wgmma_64x128<1>(d[half], tile_descriptor(As + 16 * 64 * j, BK * 128, 1024),
                                tile_descriptor(Bs + half * 2 * BK * 64 + 16 * 64 * j, BK * 128,
                                                1024),
                                tile > 0 || j > 0);
    };
    if (!tma_pipeline<STAGES, 256, STAGE * 2>(shared_bytes, tiles, load, multiply)) return;
    if (tiles == 0) return;  // a step split with no steps: nothing to add
    store_two_warpgroup_tile<HALVES>(d, dW, m0, n0, Kc, F, gridDim.z > 1);
}
#define KEEP_ALL_TMA_ENTRY(NAME, OutT, HALVES, STAGES)                                          \
    extern "C" __global__ void __launch_bounds__(288, 1) NAME(                                 \
        const __grid_constant__ TensorMap values_map, const __grid_constant__ TensorMap x_map, \
        int steps, int N, int F, int Kc, OutT* dW) {                                           \
        keep_all_wgrad_tma<HALVES, STAGES, OutT>(values_map, x_map, steps, N, F, Kc, dW);       \
    }
// 128 x 128 tiles in six stages, or 128 x 256 in four (192 KB either way).
KEEP_ALL_TMA_ENTRY(keep_all_wgrad_tma_bfloat16_out_float32, float, 1, 6)
KEEP_ALL_TMA_ENTRY(keep_all_wgrad_tma_bfloat16_out_bfloat16, bf16, 1, 6)
KEEP_ALL_TMA_ENTRY(keep_all_wgrad_tma_wide_bfloat16_out_float32, float, 2, 4)
KEEP_ALL_TMA_ENTRY(keep_all_wgrad_tma_wide_bfloat16_out_bfloat16, bf16, 2, 4)

// gather_mm's product (out = A . B[kept rows], as gather_mm_hopper without SELECT) fed by the
// copy engine, for P dividing 64: A's tile is one box of 128 rows x 64 k; B's, for each slice
// in the tile, its P rows of each 64-column atom, a box of their own at the slice's first row
// (so B's kept rows need not be contiguous), the boxes split between the loading warp's lanes.
// Slices past the block's share of Kc are read past B's last row, as zeros. maps are 3-d with
// one outer layer (A: Kc, M; B: F, b_rows). Dynamic shared memory: the ring's barriers, the
// stages, then the block's index entries.
template <typename OutT, int HALVES, int STAGES>
__device__ void gather_mm_tma(const TensorMap& a_map, const TensorMap& b_map, const int* index,
                              int P, int rows_per_group, int b_rows, OutT* out, int M, int Kc,
                              int F) {
    constexpr int BM = 128, BN = 128 * HALVES, BK = 64;
    constexpr int STAGE = BK * BM + BK * BN;
    extern __shared__ __align__(1024) unsigned char shared_bytes[];
    bf16* stages = reinterpret_cast<bf16*>(shared_bytes + RING_BYTES);
    int* first_rows = reinterpret_cast<int*>(stages + STAGES * STAGE);
    int tid = threadIdx.x, group = tid / 128;
    int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    wait_for_previous_kernel();  // dense's per-step product: A just written
    const int* idx = index + (size_t)(m0 / rows_per_group) * (Kc / P);
    KShare share = gather_rows<BK, false>(idx, StepSelection{}, P, Kc, first_rows);
    int slices_per_tile = BK / P, copies = slices_per_tile * (BN / 64);
    float d[HALVES][64];
#pragma unroll
    for (int half = 0; half < HALVES; ++half)
#pragma unroll
        for (int i = 0; i < 64; ++i) d[half][i] = 0.f;
    auto load = [&](int tile, int stage, int loader, unsigned long long* full) {
        bf16* As = stages + stage * STAGE;
        bf16* Bs = As + BK * BM;
        int k0 = share.begin + tile * BK;
        if (loader == 0) bulk_load(As, a_map, k0, m0, 0, full);
        for (int c = loader; c < copies; c += 32) {
            int slice = c % slices_per_tile, atom = c / slices_per_tile, k = k0 + slice * P;
            int row = k < share.end ? first_rows[k / P - share.first_slice] : b_rows;
            bulk_load(Bs + atom * BK * 64 + slice * P * 64, b_map, n0 + 64 * atom, row, 0, full);
        }
    };
    auto multiply = [&](int, int stage) {
        const bf16* As = stages + stage * STAGE + group * 64 * BK;  // this warpgroup's 64 rows
        const bf16* Bs = stages + stage * STAGE + BM * BK;
#pragma unroll
        for (int j = 0; j < BK / 16; ++j)  // k16 step j: 32 bytes into A's rows, 16 rows of B
#pragma unroll
            for (int half = 0; half < HALVES; ++half)
                wgmma_64x128<0>(d[half], tile_descriptor(As + 16 * j, 16, 1024),
                                tile_descriptor(Bs + half * 2 * BK * 64 + 16 * 64 * j,
                                                BK * 128, 1024));
    };
    bool multiplied = tma_pipeline<STAGES, 256, STAGE * 2>(shared_bytes, share.tiles, load,
                                                           multiply);
    let_next_kernel_launch();
    if (!multiplied) return;
    store_two_warpgroup_tile<HALVES>(d, out, m0, n0, M, F, gridDim.z > 1);
}
#define GATHER_TMA_ENTRY(NAME, OutT, HALVES, STAGES, BLOCKS)                                   \
    extern "C" __global__ void __launch_bounds__(288, BLOCKS) NAME(                            \
        const __grid_constant__ TensorMap a_map, const __grid_constant__ TensorMap b_map,      \
        const int* index, int P, int rows_per_group, int b_rows, OutT* out, int M, int Kc,     \
        int F) {                                                                               \
        gather_mm_tma<OutT, HALVES, STAGES>(a_map, b_map, index, P, rows_per_group, b_rows,    \
                                            out, M, Kc, F);                                    \
    }
GATHER_TMA_ENTRY(gather_mm_tma_bfloat16_out_float32, float, 1, 6, 1)
GATHER_TMA_ENTRY(gather_mm_tma_bfloat16_out_bfloat16, bf16, 1, 6, 1)
GATHER_TMA_ENTRY(gather_mm_tma_wide_bfloat16_out_float32, float, 2, 4, 1)
GATHER_TMA_ENTRY(gather_mm_tma_wide_bfloat16_out_bfloat16, bf16, 2, 4, 1)
// The per-step product (a few rows, split-K): three stages, two blocks an SM, as the cp.async
// kernel's.
GATHER_TMA_ENTRY(gather_mm_tma_step_bfloat16_out_float32, float, 1, 3, 2)

// out (M x F, float32) = A (M x K) . B (F x K)^T, both float32 and K-major (rows of K), on tf32
// wgmma fed by the copy engine: the float32 weight gradients (A = s^T, B = x^T over all T*N
// rows), dense's dx (A = s, B = W_ih^T) and per-step product, and the forward's products
// (A = x or h, B = W_ih or W_hh as they are). BM = 128 (two warpgroups of 64 rows), BN = 128 *
// HALVES, BK = 32 (one 128-byte swizzled row of each operand's rows); each tile is one box of A
// and HALVES of B. Split-K over gridDim.z (k tiles shared out evenly), red adds into out then,
// as with `add` (out holds the addend: the forward's x W_ih^T + b before h W_hh^T).
// maps: 3-d (K, rows, 1), boxes (32, 128, 1). Dynamic shared memory: the ring, the stages.
template <int HALVES, int STAGES>
__device__ void kmajor_mm_tma_tf32(const TensorMap& a_map, const TensorMap& b_map, int M, int F,
                                   int K, float* out, bool add) {
    constexpr int BM = 128, BN = 128 * HALVES, BK = 32;
    constexpr int STAGE = BK * BM + BK * BN;
    extern __shared__ __align__(1024) unsigned char shared_bytes[];
    float* stages = reinterpret_cast<float*>(shared_bytes + RING_BYTES);
    int tid = threadIdx.x, group = tid / 128;
    int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    int k_tiles = (K + BK - 1) / BK, per_split = (k_tiles + gridDim.z - 1) / gridDim.z;
    int first_tile = blockIdx.z * per_split;
    int tiles = max(0, min(k_tiles - first_tile, per_split));
    wait_for_previous_kernel();  // the per-step product of float32: A just written
    float d[HALVES][64];
    auto load = [&](int tile, int stage, int loader, unsigned long long* full) {
        if (loader != 0) return;
        int k0 = (first_tile + tile) * BK;
        float* As = stages + stage * STAGE;
        float* Bs = As + BK * BM;
        bulk_load(As, a_map, k0, m0, 0, full);
#pragma unroll
        for (int half = 0; half < HALVES; ++half)
            bulk_load(Bs + half * BK * 128, b_map, k0, n0 + 128 * half, 0, full);
    };
    auto multiply = [&](int tile, int stage) {
        const float* As = stages + stage * STAGE + group * 64 * BK;  // this warpgroup's 64 rows
        const float* Bs = stages + stage * STAGE + BM * BK;
#pragma unroll
        for (int j = 0; j < BK / 8; ++j)  // k8 step j: 32 bytes into every row of both tiles
#pragma unroll
            for (int half = 0; half < HALVES; ++half)
                wgmma_64x128_tf32(d[half], tile_descriptor(As + 8 * j, 16, 1024),
                                  tile_descriptor(Bs + half * BK * 128 + 8 * j, 16, 1024),
                                  tile > 0 || j > 0);
    };
    bool multiplied = tma_pipeline<STAGES, 256, STAGE * 4>(shared_bytes, tiles, load, multiply);
    let_next_kernel_launch();
    if (!multiplied || tiles == 0) return;  // tiles 0: a split with no k tiles, nothing to add
    store_two_warpgroup_tile<HALVES>(d, out, m0, n0, M, F, add || gridDim.z > 1);
}
#define KMAJOR_TMA_ENTRY(NAME, HALVES, STAGES)                                                  \
    extern "C" __global__ void __launch_bounds__(288, 1) NAME(                                 \
        const __grid_constant__ TensorMap a_map, const __grid_constant__ TensorMap b_map,      \
        int M, int F, int K, float* out, int add) {                                            \
        kmajor_mm_tma_tf32<HALVES, STAGES>(a_map, b_map, M, F, K, out, add != 0);              \
    }
// 128 x 128 tiles in six stages, or 128 x 256 in four (192 KB either way).
KMAJOR_TMA_ENTRY(kmajor_mm_tma_float32, 1, 6)
KMAJOR_TMA_ENTRY(kmajor_mm_tma_wide_float32, 2, 4)
