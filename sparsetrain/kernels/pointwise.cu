// Fused LSTM cell steps, gate order (i, f, g, o), one thread per (row, hidden unit).
// Blocks are 32 threads wide and 8 tall; H must be a multiple of 32 (of 64 for the pairs entries).

// Forward: net (N x 4H, pre-activations with biases) and c_{t-1} -> saved gates, c_t, h_t.
template <typename T>
__device__ void forward_step(const T* net, const float* c_prev, T* gates, float* c, T* h,
                             int N, int H) {
    int j = blockIdx.x * 32 + threadIdx.x;
    int n = blockIdx.y * 8 + threadIdx.y;
    if (n >= N || j >= H) return;
    const T* row = net + (size_t)n * 4 * H;
    float i = 1.f / (1.f + expf(-to_f(row[j])));
    float f = 1.f / (1.f + expf(-to_f(row[H + j])));
    float g = tanhf(to_f(row[2 * H + j]));
    float o = 1.f / (1.f + expf(-to_f(row[3 * H + j])));
    T* grow = gates + (size_t)n * 4 * H;
    grow[j] = from_f<T>(i);
    grow[H + j] = from_f<T>(f);
    grow[2 * H + j] = from_f<T>(g);
    grow[3 * H + j] = from_f<T>(o);
    float cv = f * c_prev[(size_t)n * H + j] + i * g;
    c[(size_t)n * H + j] = cv;
    h[(size_t)n * H + j] = from_f<T>(o * tanhf(cv));
}

// VEC adjacent elements (VEC = 1 or 2, 2 aligned to 2) as floats, and back: with VEC = 2 a
// warp moves 128 bytes of bf16 (256 of float32) per load instead of 64.
template <int VEC> __device__ __forceinline__ void load_vec(const float* p, float v[VEC]) {
    if constexpr (VEC == 2) { float2 x = *reinterpret_cast<const float2*>(p); v[0] = x.x; v[1] = x.y; }
    else v[0] = *p;
}
template <int VEC> __device__ __forceinline__ void load_vec(const bf16* p, float v[VEC]) {
    if constexpr (VEC == 2) {
        float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
        v[0] = x.x; v[1] = x.y;
    } else v[0] = to_f(*p);
}
template <int VEC> __device__ __forceinline__ void store_vec(float* p, const float v[VEC]) {
    if constexpr (VEC == 2) *reinterpret_cast<float2*>(p) = make_float2(v[0], v[1]);
    else *p = v[0];
}
template <int VEC> __device__ __forceinline__ void store_vec(bf16* p, const float v[VEC]) {
    if constexpr (VEC == 2) *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v[0], v[1]);
    else *p = from_f<bf16>(v[0]);
}

// Backward: dh = dh_rec + grad_out, dc (in: dc_t, out: dc_{t-1}) -> dnet, and the squared L2
// norms of the stored dnet over groups of `group` consecutive columns and the rows of this
// block's row chunk (rows_per_chunk = gridDim-y chunking). norm_layout 0: none;
// 1 (coarse): norms[chunk][column group]; 2 (fine): norms[column group][chunk].
// clear_dh_rec: dh_rec is zeroed once read, ready for the split-K product that adds the next
// step's dh_rec into it (saves a memset launch per step).
// A thread takes VEC adjacent hidden units of each of its rows; blocks are 32 * VEC units wide.
template <typename T, int VEC>
__device__ void backward_step(float* dh_rec, const T* grad_out, float* dc, const T* gates,
                              const float* c, const float* c_prev, T* dnet, float* norms,
                              int N, int H, int group, int rows_per_chunk, int norm_layout,
                              int clear_dh_rec) {
    __shared__ float partial[4][VEC][8][33];
    int tx = threadIdx.x, ty = threadIdx.y;
    int j = (blockIdx.x * 32 + tx) * VEC;
    int chunk = blockIdx.y;
    int row_end = min(N, (chunk + 1) * rows_per_chunk);
    float sq[4][VEC] = {};
    for (int n = chunk * rows_per_chunk + ty; n < row_end; n += 8) {
        size_t k = (size_t)n * H + j;
        const T* grow = gates + (size_t)n * 4 * H + j;
        float i[VEC], f[VEC], g[VEC], o[VEC], dh[VEC], grad[VEC], dcv[VEC], cv[VEC], cp[VEC];
        load_vec<VEC>(grow, i);
        load_vec<VEC>(grow + H, f);
        load_vec<VEC>(grow + 2 * H, g);
        load_vec<VEC>(grow + 3 * H, o);
        load_vec<VEC>(dh_rec + k, dh);
        load_vec<VEC>(grad_out + k, grad);
        load_vec<VEC>(dc + k, dcv);
        load_vec<VEC>(c + k, cv);
        load_vec<VEC>(c_prev + k, cp);
        if (clear_dh_rec) {
            float zero[VEC] = {};
            store_vec<VEC>(dh_rec + k, zero);
        }
        float d[4][VEC], dc_prev[VEC];
#pragma unroll
        for (int v = 0; v < VEC; ++v) {
            float h_grad = dh[v] + grad[v];
            float tc = tanhf(cv[v]);
            float cell = dcv[v] + h_grad * o[v] * (1.f - tc * tc);
            d[0][v] = cell * g[v] * i[v] * (1.f - i[v]);
            d[1][v] = cell * cp[v] * f[v] * (1.f - f[v]);
            d[2][v] = cell * i[v] * (1.f - g[v] * g[v]);
            d[3][v] = h_grad * tc * o[v] * (1.f - o[v]);
            dc_prev[v] = cell * f[v];
        }
        store_vec<VEC>(dc + k, dc_prev);
        T* drow = dnet + (size_t)n * 4 * H + j;
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            store_vec<VEC>(drow + q * H, d[q]);
#pragma unroll
            for (int v = 0; v < VEC; ++v) {
                float stored = to_f(from_f<T>(d[q][v]));  // the norm of what the products read
                sq[q][v] += stored * stored;
            }
        }
    }
    if (norm_layout == 0) return;
#pragma unroll
    for (int q = 0; q < 4; ++q)
#pragma unroll
        for (int v = 0; v < VEC; ++v) partial[q][v][ty][tx] = sq[q][v];
    __syncthreads();
    if (ty >= 4) return;  // warp q finishes gate q: rows first, then the group's lanes
    int q = ty, groups = 4 * H / group;
    auto write = [&](int column, float s) {
        int column_group = column / group;
        if (norm_layout == 1)
            norms[(size_t)chunk * groups + column_group] = s;
        else
            norms[(size_t)column_group * gridDim.y + chunk] = s;
    };
    float s[VEC];
#pragma unroll
    for (int v = 0; v < VEC; ++v) {
        s[v] = 0.f;
#pragma unroll
        for (int r = 0; r < 8; ++r) s[v] += partial[q][v][r][tx];
    }
    if (group < VEC) {  // group 1 with pairs: one norm per column
#pragma unroll
        for (int v = 0; v < VEC; ++v) write(q * H + j + v, s[v]);
        return;
    }
    float total = 0.f;
#pragma unroll
    for (int v = 0; v < VEC; ++v) total += s[v];
    int lanes = group / VEC;
    for (int off = 1; off < lanes; off <<= 1) total += __shfl_xor_sync(0xffffffffu, total, off);
    if (tx % lanes == 0) write(q * H + j, total);
}

#define FORWARD_ENTRY(NAME, T)                                                            \
    extern "C" __global__ void NAME(const T* net, const float* c_prev, T* gates, float* c, \
                                    T* h, int N, int H) {                                  \
        forward_step<T>(net, c_prev, gates, c, h, N, H);                                   \
    }
FORWARD_ENTRY(lstm_forward_step_float32, float)
FORWARD_ENTRY(lstm_forward_step_bfloat16, bf16)

#define BACKWARD_ENTRY(NAME, T, VEC)                                                         \
    extern "C" __global__ void NAME(float* dh_rec, const T* grad_out, float* dc,              \
                                    const T* gates, const float* c, const float* c_prev,      \
                                    T* dnet, float* norms, int N, int H, int group,           \
                                    int rows_per_chunk, int norm_layout, int clear_dh_rec) {  \
        backward_step<T, VEC>(dh_rec, grad_out, dc, gates, c, c_prev, dnet, norms, N, H,      \
                              group, rows_per_chunk, norm_layout, clear_dh_rec);              \
    }
BACKWARD_ENTRY(lstm_backward_step_float32, float, 1)
BACKWARD_ENTRY(lstm_backward_step_bfloat16, bf16, 1)
BACKWARD_ENTRY(lstm_backward_step_pairs_float32, float, 2)  // H a multiple of 64
BACKWARD_ENTRY(lstm_backward_step_pairs_bfloat16, bf16, 2)
