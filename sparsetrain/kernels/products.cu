// Matrix products on the compact form of dnet, on tensor cores (bf16 m16n8k16 or tf32 m16n8k8,
// fp32 accumulate). Dropped slices are skipped by indexing: no weight row or column is copied.

// Tiles are staged in shared memory: each thread loads 4-element vectors (8 B bf16, 16 B fp32),
// all of a tile's loads in flight at once, the next tile's loads issued before the current
// tile's tensor-core work (register double buffering). Row lengths must be multiples of 4.
#define GM_BM 64
#define GM_BN 128
#define GM_BK 32
#define GM_THREADS 256
#define WG_BM 64
#define WG_BN 32
#define WG_BK 32
#define WG_THREADS 128

template <typename T> struct Vec4;
template <> struct Vec4<float> { typedef float4 type; };
template <> struct Vec4<bf16> { typedef uint2 type; };

template <typename T> __device__ __forceinline__ typename Vec4<T>::type load4(const T* p) {
    return *reinterpret_cast<const typename Vec4<T>::type*>(p);
}
template <typename T> __device__ __forceinline__ typename Vec4<T>::type zero4() {
    typename Vec4<T>::type v;
    memset(&v, 0, sizeof(v));
    return v;
}
template <typename T> __device__ __forceinline__ void store4(T* p, typename Vec4<T>::type v) {
    *reinterpret_cast<typename Vec4<T>::type*>(p) = v;
}

// out (M x F) = A (M x Kc, compact values) . B[rows of the kept slices] (B is rows x F).
// Compact column k of row block `group` reads B row index[group][k / P] * P + k % P, where
// group = row / rows_per_group (one step's N rows share one index; rows_per_group % 64 == 0;
// P % 4 == 0 so a 4-vector never straddles two slices). 8 warps per block (2 x 4), each
// 32 x 32 of the 64 x 128 block tile. gridDim.z > 1 splits Kc and adds atomically (fp32 out
// only; out must be zeroed first).
template <typename T, typename OutT>
__device__ void gather_mm(const T* A, const T* B, const int* index, int P, int rows_per_group,
                          OutT* out, int M, int Kc, int F) {
    typedef typename Vec4<T>::type V;
    constexpr int KS = Mma<T>::K;
    constexpr int A_VECS = GM_BM * GM_BK / 4 / GM_THREADS;  // 2
    constexpr int B_VECS = GM_BK * GM_BN / 4 / GM_THREADS;  // 4
    constexpr int PAD = 16 / sizeof(T);  // 16 bytes: conflict-free fragment reads
    __shared__ __align__(16) T As[GM_BM][GM_BK + PAD];   // As[m][k]
    __shared__ __align__(16) T Bs[GM_BK][GM_BN + PAD];   // Bs[k][n] = B[row(k)][n0 + n]
    int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, t = lane & 3;
    int m0 = blockIdx.y * GM_BM, n0 = blockIdx.x * GM_BN;
    int wm = (warp / 4) * 32, wn = (warp % 4) * 32;
    const int* idx = index + (size_t)(m0 / rows_per_group) * (Kc / P);
    int k_len = ((Kc + gridDim.z - 1) / gridDim.z + GM_BK - 1) / GM_BK * GM_BK;
    int k_begin = blockIdx.z * k_len, k_end = min(Kc, k_begin + k_len);
    V a_next[A_VECS], b_next[B_VECS];
    auto fetch = [&](int k0) {
#pragma unroll
        for (int i = 0; i < A_VECS; ++i) {
            int e = (tid + i * GM_THREADS) * 4, r = e / GM_BK, k = e % GM_BK;
            int row = m0 + r, col = k0 + k;
            a_next[i] = (row < M && col < k_end) ? load4(A + (size_t)row * Kc + col) : zero4<T>();
        }
#pragma unroll
        for (int i = 0; i < B_VECS; ++i) {
            int e = (tid + i * GM_THREADS) * 4, k = e / GM_BN, c = e % GM_BN;
            int kk = k0 + k, col = n0 + c;
            b_next[i] = (kk < k_end && col < F)
                            ? load4(B + (size_t)(idx[kk / P] * P + kk % P) * F + col) : zero4<T>();
        }
    };
    float acc[2][4][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.f;
    if (k_begin < k_end) fetch(k_begin);
    for (int k0 = k_begin; k0 < k_end; k0 += GM_BK) {
#pragma unroll
        for (int i = 0; i < A_VECS; ++i) {
            int e = (tid + i * GM_THREADS) * 4;
            store4(&As[e / GM_BK][e % GM_BK], a_next[i]);
        }
#pragma unroll
        for (int i = 0; i < B_VECS; ++i) {
            int e = (tid + i * GM_THREADS) * 4;
            store4(&Bs[e / GM_BN][e % GM_BN], b_next[i]);
        }
        __syncthreads();
        if (k0 + GM_BK < k_end) fetch(k0 + GM_BK);
#pragma unroll
        for (int kk = 0; kk < GM_BK; kk += KS) {
            unsigned a[2][4], b[4][2];
#pragma unroll
            for (int mt = 0; mt < 2; ++mt)
                Mma<T>::frag_a_rows(a[mt], &As[wm + 16 * mt][kk], GM_BK + PAD, lane);
#pragma unroll
            for (int nt = 0; nt < 4; nt += 2)
                Mma<T>::frag_b2_kmajor(b[nt], b[nt + 1], &Bs[kk][wn + 8 * nt], GM_BN + PAD, lane);
#pragma unroll
            for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) Mma<T>::mma(acc[mt][nt], a[mt], b[nt]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                int row = m0 + wm + 16 * mt + acc_row(e, g), col = n0 + wn + 8 * nt + acc_col(e, t);
                if (row >= M || col >= F) continue;
                size_t at = (size_t)row * F + col;
                if constexpr (sizeof(OutT) == 4) {
                    if (gridDim.z > 1) atomicAdd((float*)&out[at], acc[mt][nt][e]);
                    else out[at] = acc[mt][nt][e];
                } else {
                    out[at] = from_f<OutT>(acc[mt][nt][e]);
                }
            }
}

// Weight gradient dW (G*R*P x F) = sum over steps of s_t^T X_t, s_t in compact form
// (steps*N x Kc, Kc = G*(R-S)*P, Kr = (R-S)*P per region) with index (steps x G*(R-S)).
// A block takes `regions_per_block` whole regions (their Kr-wide compact columns, <= 64) and
// 32 columns of F. Each step it multiplies only the kept slices (the compact columns) by X_t
// and adds the result into the rows of those slices in a shared-memory accumulator holding
// every row of its regions. Warp w owns compact rows 16w .. 16w+15 of the block.
template <typename T, typename OutT>
__device__ void region_wgrad(const T* vals, const T* X, const int* index, int P, int R, int S,
                             int steps, int N, int F, int Kc, int regions_per_block, OutT* dW) {
    typedef typename Vec4<T>::type V;
    constexpr int KS = Mma<T>::K;
    constexpr int A_VECS = WG_BK * WG_BM / 4 / WG_THREADS;  // 4
    constexpr int B_VECS = WG_BK * WG_BN / 4 / WG_THREADS;  // 2
    extern __shared__ float acc[];  // [regions_per_block * R * P][WG_BN]
    constexpr int PAD = 16 / sizeof(T);
    __shared__ __align__(16) T As[WG_BK][WG_BM + PAD];   // As[k][m] = s_t[k][m0 + m]
    __shared__ __align__(16) T Bs[WG_BK][WG_BN + PAD];   // Bs[k][n] = X_t[k][n0 + n]
    int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, t = lane & 3;
    int keep = R - S, Kr = keep * P, RP = R * P, G = Kc / Kr;
    int first_region = blockIdx.y * regions_per_block;
    int regions = min(regions_per_block, G - first_region);
    int m0 = first_region * Kr, m_count = regions * Kr, n0 = blockIdx.x * WG_BN;
    int acc_rows = regions * RP;
    int k_tiles = (N + WG_BK - 1) / WG_BK, tiles = steps * k_tiles;
    for (int i = tid; i < acc_rows * WG_BN; i += blockDim.x) acc[i] = 0.f;
    V a_next[A_VECS], b_next[B_VECS];
    auto fetch = [&](int tile) {
        int s = tile / k_tiles, k0 = (tile % k_tiles) * WG_BK;
        const T* v = vals + (size_t)s * N * Kc;
        const T* x = X + (size_t)s * N * F;
#pragma unroll
        for (int i = 0; i < A_VECS; ++i) {
            int e = (tid + i * WG_THREADS) * 4, k = e / WG_BM, m = e % WG_BM;
            a_next[i] = (k0 + k < N && m < m_count) ? load4(v + (size_t)(k0 + k) * Kc + m0 + m)
                                                    : zero4<T>();
        }
#pragma unroll
        for (int i = 0; i < B_VECS; ++i) {
            int e = (tid + i * WG_THREADS) * 4, k = e / WG_BN, n = e % WG_BN;
            b_next[i] = (k0 + k < N && n0 + n < F) ? load4(x + (size_t)(k0 + k) * F + n0 + n)
                                                   : zero4<T>();
        }
    };
    float c[4][4];
    fetch(0);
    for (int tile = 0; tile < tiles; ++tile) {
        int s = tile / k_tiles, k_tile = tile % k_tiles;
        if (k_tile == 0) {
#pragma unroll
            for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) c[nt][e] = 0.f;
        }
#pragma unroll
        for (int i = 0; i < A_VECS; ++i) {
            int e = (tid + i * WG_THREADS) * 4;
            store4(&As[e / WG_BM][e % WG_BM], a_next[i]);
        }
#pragma unroll
        for (int i = 0; i < B_VECS; ++i) {
            int e = (tid + i * WG_THREADS) * 4;
            store4(&Bs[e / WG_BN][e % WG_BN], b_next[i]);
        }
        __syncthreads();
        if (tile + 1 < tiles) fetch(tile + 1);
        if (16 * warp < m_count) {
#pragma unroll
            for (int kk = 0; kk < WG_BK; kk += KS) {
                unsigned a[4], b[4][2];
                Mma<T>::frag_a_kmajor(a, &As[kk][16 * warp], WG_BM + PAD, lane);
#pragma unroll
                for (int nt = 0; nt < 4; nt += 2)
                    Mma<T>::frag_b2_kmajor(b[nt], b[nt + 1], &Bs[kk][8 * nt], WG_BN + PAD, lane);
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) Mma<T>::mma(c[nt], a, b[nt]);
            }
        }
        __syncthreads();
        if (k_tile == k_tiles - 1) {  // step s done: add into its kept slices' rows
            const int* idx = index + (size_t)s * (Kc / P);
#pragma unroll
            for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    int m = 16 * warp + acc_row(e, g);
                    if (m >= m_count) continue;
                    int compact = m0 + m;
                    int r = (idx[compact / P] - first_region * R) * P + compact % P;
                    acc[r * WG_BN + 8 * nt + acc_col(e, t)] += c[nt][e];
                }
        }
    }
    __syncthreads();
    for (int i = tid; i < acc_rows * WG_BN; i += blockDim.x) {
        int col = n0 + i % WG_BN;
        if (col < F) dW[(size_t)(first_region * RP + i / WG_BN) * F + col] = from_f<OutT>(acc[i]);
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

// Fine method, dense products: zero dnet's dropped My x Mx blocks in place.
template <typename T>
__device__ void zero_dropped_blocks(T* dnet, const unsigned char* keep_mask, int N, int cols,
                                    int My, int Mx) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)N * cols) return;
    int n = e / cols, col = e % cols;
    if (!keep_mask[(size_t)(n / My) * (cols / Mx) + col / Mx]) dnet[e] = from_f<T>(0.f);
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
    extern "C" __global__ void __launch_bounds__(128) NAME(                                    \
        const T* vals, const T* X, const int* index, int P, int R, int S, int steps, int N,     \
        int F, int Kc, int regions_per_block, float* dW) {                                     \
        region_wgrad<T, float>(vals, X, index, P, R, S, steps, N, F, Kc, regions_per_block, dW); \
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

#define ZERO_ENTRY(NAME, T)                                                                     \
    extern "C" __global__ void NAME(T* dnet, const unsigned char* keep_mask, int N, int cols,    \
                                    int My, int Mx) {                                           \
        zero_dropped_blocks<T>(dnet, keep_mask, N, cols, My, Mx);                                \
    }
ZERO_ENTRY(zero_dropped_blocks_float32, float)
ZERO_ENTRY(zero_dropped_blocks_bfloat16, bf16)
