// Fused LSTM cell steps, gate order (i, f, g, o), one thread per (row, hidden unit).
// Blocks are 32 hidden units wide and 8 threads tall; H must be a multiple of 32.

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

// Backward: dh = dh_rec + grad_out, dc (in: dc_t, out: dc_{t-1}) -> dnet, and the squared L2
// norms of the stored dnet over groups of `group` consecutive columns and the rows of this
// block's row chunk (rows_per_chunk = gridDim-y chunking). norm_layout 0: none;
// 1 (coarse): norms[chunk][column group]; 2 (fine): norms[column group][chunk].
// clear_dh_rec: dh_rec is zeroed once read, ready for the split-K product that adds the next
// step's dh_rec into it (saves a memset launch per step).
template <typename T>
__device__ void backward_step(float* dh_rec, const T* grad_out, float* dc, const T* gates,
                              const float* c, const float* c_prev, T* dnet, float* norms,
                              int N, int H, int group, int rows_per_chunk, int norm_layout,
                              int clear_dh_rec) {
    __shared__ float partial[4][8][33];
    int tx = threadIdx.x, ty = threadIdx.y;
    int j = blockIdx.x * 32 + tx;
    int chunk = blockIdx.y;
    int row_end = min(N, (chunk + 1) * rows_per_chunk);
    float sq[4] = {0.f, 0.f, 0.f, 0.f};
    for (int n = chunk * rows_per_chunk + ty; n < row_end; n += 8) {
        size_t k = (size_t)n * H + j;
        const T* grow = gates + (size_t)n * 4 * H;
        float i = to_f(grow[j]), f = to_f(grow[H + j]), g = to_f(grow[2 * H + j]),
              o = to_f(grow[3 * H + j]);
        float dh = dh_rec[k] + to_f(grad_out[k]);
        if (clear_dh_rec) dh_rec[k] = 0.f;
        float tc = tanhf(c[k]);
        float dcv = dc[k] + dh * o * (1.f - tc * tc);
        float d[4];
        d[0] = dcv * g * i * (1.f - i);
        d[1] = dcv * c_prev[k] * f * (1.f - f);
        d[2] = dcv * i * (1.f - g * g);
        d[3] = dh * tc * o * (1.f - o);
        dc[k] = dcv * f;
        T* drow = dnet + (size_t)n * 4 * H;
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            T stored = from_f<T>(d[q]);
            drow[q * H + j] = stored;
            float v = to_f(stored);
            sq[q] += v * v;
        }
    }
    if (norm_layout == 0) return;
#pragma unroll
    for (int q = 0; q < 4; ++q) partial[q][ty][tx] = sq[q];
    __syncthreads();
    if (ty != 0) return;  // warp 0 finishes: rows first, then the group's lanes
    int groups = 4 * H / group;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
        float s = 0.f;
        for (int r = 0; r < 8; ++r) s += partial[q][r][tx];
        for (int off = 1; off < group; off <<= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (tx % group == 0) {
            int column_group = (q * H + j) / group;
            if (norm_layout == 1)
                norms[(size_t)chunk * groups + column_group] = s;
            else
                norms[(size_t)column_group * gridDim.y + chunk] = s;
        }
    }
}

#define FORWARD_ENTRY(NAME, T)                                                            \
    extern "C" __global__ void NAME(const T* net, const float* c_prev, T* gates, float* c, \
                                    T* h, int N, int H) {                                  \
        forward_step<T>(net, c_prev, gates, c, h, N, H);                                   \
    }
FORWARD_ENTRY(lstm_forward_step_float32, float)
FORWARD_ENTRY(lstm_forward_step_bfloat16, bf16)

#define BACKWARD_ENTRY(NAME, T)                                                              \
    extern "C" __global__ void NAME(float* dh_rec, const T* grad_out, float* dc,              \
                                    const T* gates, const float* c, const float* c_prev,      \
                                    T* dnet, float* norms, int N, int H, int group,           \
                                    int rows_per_chunk, int norm_layout, int clear_dh_rec) {  \
        backward_step<T>(dh_rec, grad_out, dc, gates, c, c_prev, dnet, norms, N, H, group,    \
                         rows_per_chunk, norm_layout, clear_dh_rec);                          \
    }
BACKWARD_ENTRY(lstm_backward_step_float32, float)
BACKWARD_ENTRY(lstm_backward_step_bfloat16, bf16)
