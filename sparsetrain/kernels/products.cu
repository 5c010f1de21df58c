// Matrix products on the compact form of dnet, on tensor cores (bf16 m16n8k16 or tf32 m16n8k8,
// fp32 accumulate). Dropped slices are skipped by indexing: no weight row or column is copied.

// Tiles stream through a ring of shared-memory stages filled by cp.async (16-byte chunks):
// while the tensor cores work on one tile, the next STAGES-1 tiles' loads are in flight, so a
// block waits for global memory once per kernel rather than once per tile. Every row length
// (Kc, F, N x Kc rows) must be a multiple of the chunk (8 bf16 / 4 float32 elements).
#define GM_BM 64
#define GM_BN 128
#define GM_BK 32
#define GM_THREADS 256
#define GM_STAGES 4
#define WG_BM 64
#define WG_BN 128
#define WG_BK 32
#define WG_THREADS 256
#define WG_STAGES 3
#define WG_ACC_STRIDE (WG_BN + 8)  // floats per accumulator row: conflict-free float2 adds

template <typename T> struct Chunk {
    static constexpr int ELEMENTS = 16 / sizeof(T);
    static constexpr int PAD = ELEMENTS;  // 16 bytes per row: conflict-free ldmatrix rows
};

template <typename T> __host__ __device__ constexpr int gather_stage_elements() {
    return GM_BM * (GM_BK + Chunk<T>::PAD) + GM_BK * (GM_BN + Chunk<T>::PAD);
}
template <typename T> __host__ __device__ constexpr int wgrad_stage_elements() {
    return WG_BK * (WG_BM + Chunk<T>::PAD) + WG_BK * (WG_BN + Chunk<T>::PAD);
}

// Two adjacent outputs (8-byte aligned): stored, or with `add` reduced into fp32 memory by one
// vector red (split-K: half the atomic operations of scalar adds).
__device__ __forceinline__ void store_pair(float* at, float a, float b, bool add) {
    if (add)
        asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" :: "l"(at), "f"(a), "f"(b) : "memory");
    else
        *reinterpret_cast<float2*>(at) = make_float2(a, b);
}
__device__ __forceinline__ void store_pair(bf16* at, float a, float b, bool) {
    *reinterpret_cast<__nv_bfloat162*>(at) = __floats2bfloat162_rn(a, b);
}

// out (M x F) = A (M x Kc, compact values) . B[rows of the kept slices] (B is rows x F).
// Compact column k of row block `group` reads B row index[group][k / P] * P + k % P, where
// group = row / rows_per_group (one step's N rows share one index; rows_per_group % 64 == 0).
// 8 warps per block (2 x 4), each 32 x 32 of the 64 x 128 block tile. gridDim.z > 1 splits Kc
// and adds atomically (fp32 out only; out must hold zeros first). Dynamic shared memory:
// GM_STAGES * gather_stage_elements<T>() elements, then the block's index entries (at most
// k_len / P + 2 ints), read once so that no tile's copies wait on a global index load.
template <typename T, typename OutT>
__device__ void gather_mm(const T* A, const T* B, const int* index, int P, int rows_per_group,
                          OutT* out, int M, int Kc, int F) {
    constexpr int KS = Mma<T>::K, CH = Chunk<T>::ELEMENTS;
    constexpr int LDA = GM_BK + Chunk<T>::PAD, LDB = GM_BN + Chunk<T>::PAD;
    constexpr int A_CHUNKS = GM_BM * GM_BK / CH / GM_THREADS;
    constexpr int B_CHUNKS = GM_BK * GM_BN / CH / GM_THREADS;
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    T* stages = reinterpret_cast<T*>(shared_bytes);
    int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, t = lane & 3;
    int m0 = blockIdx.y * GM_BM, n0 = blockIdx.x * GM_BN;
    int wm = (warp / 4) * 32, wn = (warp % 4) * 32;
    const int* idx = index + (size_t)(m0 / rows_per_group) * (Kc / P);
    int k_len = ((Kc + gridDim.z - 1) / gridDim.z + GM_BK - 1) / GM_BK * GM_BK;
    int k_begin = blockIdx.z * k_len, k_end = min(Kc, k_begin + k_len);
    int k_tiles = k_begin < k_end ? (k_end - k_begin + GM_BK - 1) / GM_BK : 0;
    int* first_rows = reinterpret_cast<int*>(stages + GM_STAGES * gather_stage_elements<T>());
    int first_slice = k_begin / P;
    for (int j = first_slice + tid; j * P < k_end; j += GM_THREADS)
        first_rows[j - first_slice] = idx[j] * P;
    __syncthreads();
    auto issue = [&](int tile) {
        T* As = stages + (tile % GM_STAGES) * gather_stage_elements<T>();
        T* Bs = As + GM_BM * LDA;
        int k0 = k_begin + tile * GM_BK;
#pragma unroll
        for (int i = 0; i < A_CHUNKS; ++i) {
            int e = (tid + i * GM_THREADS) * CH, r = e / GM_BK, k = e % GM_BK;
            bool inside = m0 + r < M && k0 + k < k_end;
            copy_async16(&As[r * LDA + k], inside ? A + (size_t)(m0 + r) * Kc + k0 + k : A,
                         inside ? 16 : 0);
        }
#pragma unroll
        for (int i = 0; i < B_CHUNKS; ++i) {
            int e = (tid + i * GM_THREADS) * CH, k = e / GM_BN, c = e % GM_BN;
            int kk = k0 + k;
            bool inside = kk < k_end && n0 + c < F;
            const T* source =
                inside ? B + (size_t)(first_rows[kk / P - first_slice] + kk % P) * F + n0 + c : B;
            copy_async16(&Bs[k * LDB + c], source, inside ? 16 : 0);
        }
    };
    float acc[2][4][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.f;
#pragma unroll
    for (int s = 0; s < GM_STAGES - 1; ++s) {
        if (s < k_tiles) issue(s);
        copy_async_commit();
    }
    for (int tile = 0; tile < k_tiles; ++tile) {
        copy_async_wait<GM_STAGES - 2>();
        __syncthreads();  // tile's stage has landed for all; the stage refilled below is free
        if (tile + GM_STAGES - 1 < k_tiles) issue(tile + GM_STAGES - 1);
        copy_async_commit();
        const T* As = stages + (tile % GM_STAGES) * gather_stage_elements<T>();
        const T* Bs = As + GM_BM * LDA;
#pragma unroll
        for (int kk = 0; kk < GM_BK; kk += KS) {
            unsigned a[2][4], b[4][2];
#pragma unroll
            for (int mt = 0; mt < 2; ++mt)
                Mma<T>::frag_a_rows(a[mt], &As[(wm + 16 * mt) * LDA + kk], LDA, lane);
#pragma unroll
            for (int nt = 0; nt < 4; nt += 2)
                Mma<T>::frag_b2_kmajor(b[nt], b[nt + 1], &Bs[kk * LDB + wn + 8 * nt], LDB, lane);
#pragma unroll
            for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) Mma<T>::mma(acc[mt][nt], a[mt], b[nt]);
        }
    }
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
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
// A block takes `regions_per_block` whole regions (their compact columns, <= 64, starting at a
// 16-byte boundary) and 128 columns of F. Each step it multiplies only the kept slices (the
// compact columns) by X_t and adds the result into the rows of those slices in a shared-memory
// accumulator holding every row of its regions. 8 warps (2 x 4), each 32 compact rows x 32
// columns. The tiles run through the steps without a break, so the pipeline never drains.
// gridDim.z > 1 splits the steps over blocks that add their sums into dW (which must hold
// zeros first): a block's tiles run one after another, so short chains keep more SMs busy.
// Dynamic shared memory: the accumulator (regions_per_block*R*P x WG_ACC_STRIDE floats),
// then WG_STAGES * wgrad_stage_elements<T>() elements.
template <typename T>
__device__ void region_wgrad(const T* vals, const T* X, const int* index, int P, int R, int S,
                             int steps, int N, int F, int Kc, int regions_per_block, float* dW) {
    constexpr int KS = Mma<T>::K, CH = Chunk<T>::ELEMENTS;
    constexpr int LDA = WG_BM + Chunk<T>::PAD, LDB = WG_BN + Chunk<T>::PAD;
    constexpr int A_CHUNKS = WG_BK * WG_BM / CH / WG_THREADS;
    constexpr int B_CHUNKS = WG_BK * WG_BN / CH / WG_THREADS;
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, t = lane & 3;
    int keep = R - S, Kr = keep * P, RP = R * P, G = Kc / Kr;
    int first_region = blockIdx.y * regions_per_block;
    int regions = min(regions_per_block, G - first_region);
    int m0 = first_region * Kr, m_count = regions * Kr, n0 = blockIdx.x * WG_BN;
    int acc_rows = regions * RP;
    float* acc = reinterpret_cast<float*>(shared_bytes);
    T* stages = reinterpret_cast<T*>(acc + regions_per_block * RP * WG_ACC_STRIDE);
    int wm = (warp / 4) * 32, wn = (warp % 4) * 32;
    int steps_per_split = (steps + gridDim.z - 1) / gridDim.z;
    int first_step = blockIdx.z * steps_per_split;
    int k_tiles = (N + WG_BK - 1) / WG_BK;
    int tiles = max(0, min(steps - first_step, steps_per_split)) * k_tiles;
    for (int i = tid; i < acc_rows * WG_ACC_STRIDE; i += blockDim.x) acc[i] = 0.f;
    auto issue = [&](int tile) {
        T* As = stages + (tile % WG_STAGES) * wgrad_stage_elements<T>();
        T* Bs = As + WG_BK * LDA;
        int s = first_step + tile / k_tiles, k0 = (tile % k_tiles) * WG_BK;
        const T* v = vals + (size_t)s * N * Kc;
        const T* x = X + (size_t)s * N * F;
#pragma unroll
        for (int i = 0; i < A_CHUNKS; ++i) {
            int e = (tid + i * WG_THREADS) * CH, k = e / WG_BM, m = e % WG_BM;
            int bytes = k0 + k < N ? max(0, min(CH, m_count - m)) * (int)sizeof(T) : 0;
            copy_async16(&As[k * LDA + m], bytes ? v + (size_t)(k0 + k) * Kc + m0 + m : vals,
                         bytes);
        }
#pragma unroll
        for (int i = 0; i < B_CHUNKS; ++i) {
            int e = (tid + i * WG_THREADS) * CH, k = e / WG_BN, n = e % WG_BN;
            bool inside = k0 + k < N && n0 + n < F;
            copy_async16(&Bs[k * LDB + n], inside ? x + (size_t)(k0 + k) * F + n0 + n : X,
                         inside ? 16 : 0);
        }
    };
    float c[2][4][4];
#pragma unroll
    for (int s = 0; s < WG_STAGES - 1; ++s) {
        if (s < tiles) issue(s);
        copy_async_commit();
    }
    bool active = wm < m_count;
    for (int tile = 0; tile < tiles; ++tile) {
        int s = first_step + tile / k_tiles, k_tile = tile % k_tiles;
        copy_async_wait<WG_STAGES - 2>();
        // The tile has landed for all; its stage's previous reader is done; the previous
        // step's accumulator additions (to rows another warp may add to now) are visible.
        __syncthreads();
        if (tile + WG_STAGES - 1 < tiles) issue(tile + WG_STAGES - 1);
        copy_async_commit();
        if (k_tile == 0) {
#pragma unroll
            for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                    for (int e = 0; e < 4; ++e) c[mt][nt][e] = 0.f;
        }
        if (active) {
            const T* As = stages + (tile % WG_STAGES) * wgrad_stage_elements<T>();
            const T* Bs = As + WG_BK * LDA;
#pragma unroll
            for (int kk = 0; kk < WG_BK; kk += KS) {
                unsigned a[2][4], b[4][2];
#pragma unroll
                for (int mt = 0; mt < 2; ++mt)
                    Mma<T>::frag_a_kmajor(a[mt], &As[kk * LDA + wm + 16 * mt], LDA, lane);
#pragma unroll
                for (int nt = 0; nt < 4; nt += 2)
                    Mma<T>::frag_b2_kmajor(b[nt], b[nt + 1], &Bs[kk * LDB + wn + 8 * nt], LDB, lane);
#pragma unroll
                for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                    for (int nt = 0; nt < 4; ++nt) Mma<T>::mma(c[mt][nt], a[mt], b[nt]);
            }
            if (k_tile == k_tiles - 1) {  // step s done: add into its kept slices' rows
                const int* idx = index + (size_t)s * (Kc / P);
#pragma unroll
                for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                    for (int half = 0; half < 2; ++half) {
                        int m = wm + 16 * mt + g + 8 * half;
                        if (m >= m_count) continue;
                        int compact = m0 + m;
                        float* row = acc + ((idx[compact / P] - first_region * R) * P
                                            + compact % P) * WG_ACC_STRIDE + wn + 2 * t;
#pragma unroll
                        for (int nt = 0; nt < 4; ++nt) {
                            float2* pair = reinterpret_cast<float2*>(row + 8 * nt);
                            float2 sum = *pair;
                            sum.x += c[mt][nt][2 * half];
                            sum.y += c[mt][nt][2 * half + 1];
                            *pair = sum;
                        }
                    }
            }
        }
    }
    __syncthreads();
    for (int i = tid; i < acc_rows * WG_BN / 2; i += blockDim.x) {
        int r = 2 * i / WG_BN, col = 2 * i % WG_BN;
        if (n0 + col >= F) continue;
        const float* pair = acc + r * WG_ACC_STRIDE + col;
        store_pair(dW + (size_t)(first_region * RP + r) * F + n0 + col, pair[0], pair[1],
                   gridDim.z > 1);
    }
}

// Per-step column sums of compact values scattered to their gate columns:
// out[s][col] = sum_n s_t[n][col] (0 for dropped columns). Block: 32 columns x 8 row lanes.
template <typename T>
__device__ void step_column_sums(const T* vals, const int* slot, int P, int N, int Kc, int cols,
                                 float* out) {
    __shared__ float part[8][33];
    int col = blockIdx.x * 32 + threadIdx.x, s = blockIdx.y;
    int q = col < cols ? slot[(size_t)s * (cols / P) + col / P] : -1;
    float sum = 0.f;
    if (q >= 0) {
        const T* v = vals + (size_t)s * N * Kc + q * P + col % P;
        for (int n = threadIdx.y; n < N; n += 8) sum += to_f(v[(size_t)n * Kc]);
    }
    part[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
        for (int r = 1; r < 8; ++r) sum += part[r][threadIdx.x];
        out[(size_t)s * cols + col] = sum;
    }
}

#define GATHER_ENTRY(NAME, T, OutT)                                                           \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                   \
        const T* A, const T* B, const int* index, int P, int rows_per_group, OutT* out, int M, \
        int Kc, int F) {                                                                      \
        gather_mm<T, OutT>(A, B, index, P, rows_per_group, out, M, Kc, F);                    \
    }
GATHER_ENTRY(gather_mm_float32_out_float32, float, float)
GATHER_ENTRY(gather_mm_bfloat16_out_float32, bf16, float)
GATHER_ENTRY(gather_mm_bfloat16_out_bfloat16, bf16, bf16)

#define WGRAD_ENTRY(NAME, T)                                                                   \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                    \
        const T* vals, const T* X, const int* index, int P, int R, int S, int steps, int N,     \
        int F, int Kc, int regions_per_block, float* dW) {                                     \
        region_wgrad<T>(vals, X, index, P, R, S, steps, N, F, Kc, regions_per_block, dW);        \
    }
WGRAD_ENTRY(region_wgrad_float32, float)
WGRAD_ENTRY(region_wgrad_bfloat16, bf16)

#define COLSUM_ENTRY(NAME, T)                                                                  \
    extern "C" __global__ void NAME(const T* vals, const int* slot, int P, int N, int Kc,       \
                                    int cols, float* out) {                                    \
        step_column_sums<T>(vals, slot, P, N, Kc, cols, out);                                   \
    }
COLSUM_ENTRY(step_column_sums_float32, float)
COLSUM_ENTRY(step_column_sums_bfloat16, bf16)
