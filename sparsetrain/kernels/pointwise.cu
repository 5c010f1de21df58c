// Fused LSTM cell steps, gate order (i, f, g, o), one thread per (row, hidden unit).
// Blocks are 32 threads wide and 8 tall; H must be a multiple of 32 (of 64 for the pairs entries).
// The coarse step with its selection runs in thread-block clusters instead (below).

// Forward: net (N x 4H, pre-activations with biases) and c_{t-1} -> saved gates, c_t, h_t.
template <typename T>
__device__ void forward_step(const T* net, const float* c_prev, T* gates, float* c, T* h,
                             int N, int H) {
    int j = blockIdx.x * 32 + threadIdx.x;
    int n = blockIdx.y * 8 + threadIdx.y;
    wait_for_previous_kernel();
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

// One (row, hidden unit) of the cell's backward: the four gate gradients into d (order i, f,
// g, o) from the saved gates, dh = dh_rec + grad_out, dc_t, c_t and c_{t-1}; returns dc_{t-1}.
__device__ __forceinline__ float cell_backward(float i, float f, float g, float o, float h_grad,
                                               float dc, float c, float c_prev, float d[4]) {
    float tc = tanhf(c);
    float cell = dc + h_grad * o * (1.f - tc * tc);
    d[0] = cell * g * i * (1.f - i);
    d[1] = cell * c_prev * f * (1.f - f);
    d[2] = cell * i * (1.f - g * g);
    d[3] = h_grad * tc * o * (1.f - o);
    return cell * f;
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
    wait_for_previous_kernel();
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
            float unit[4];
            dc_prev[v] = cell_backward(i[v], f[v], g[v], o[v], dh[v] + grad[v], dcv[v], cv[v],
                                       cp[v], unit);
#pragma unroll
            for (int q = 0; q < 4; ++q) d[q][v] = unit[q];
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
    let_next_kernel_launch();
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

// Thread-block clusters (sm_90): this block's rank, a barrier of all the cluster's threads
// (release/acquire: shared-memory writes before it are seen by every block after it), and a
// float of another block's shared memory at the address `local` has in this one.
__device__ __forceinline__ void cluster_arrive() {
    asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() {
    asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// Volatile, so it stays after the barrier before it, but with no memory clobber: loads from
// several ranks are then in flight together until their values are used.
__device__ __forceinline__ float cluster_load(const float* local, unsigned rank) {
    unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(local)), remote;
    float value;
    asm("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(address), "r"(rank));
    asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(value) : "r"(remote));
    return value;
}

// Backward step fused with coarse's selection, where each region (R slices of P columns) lies
// inside one gate's H columns: a cluster of ROW_SHARES blocks owns `units` hidden units
// (blockDim.x, a multiple of the region width R * P), so the regions of their 4 * units
// columns, and block y of it the y-th share of the N rows. A block computes its rows of dnet
// as backward_step does and holds them in shared memory; the cluster adds up each slice's
// squared norm (of the stored values) over all rows, every block in rank order, so that all
// decide alike: each region keeps its `keep` slices of largest norm (ties: the lower slice,
// as rank_of). Then each block writes its rows of dnet with the dropped slices as zeros, and
// the first also index, slot and energy as coarse_select does (select.cu), for the products
// that run dense over dnet. Dynamic shared memory: fused_coarse_shared_bytes (pointwise.py).
#define ROW_SHARES 8
template <typename T>
__device__ void backward_step_coarse(float* __restrict__ dh_rec, const T* __restrict__ grad_out,
                                     float* __restrict__ dc, const T* __restrict__ gates,
                                     const float* __restrict__ c,
                                     const float* __restrict__ c_prev, T* __restrict__ dnet,
                                     int N, int H, int P, int R, int keep, int* index,
                                     int* slot, float* energy) {
    extern __shared__ float partial[];  // [blockDim.y][columns]
    int units = blockDim.x, lines = blockDim.y, columns = 4 * units, slices = columns / P;
    float* share_norm = partial + lines * columns;            // [slices]: this block's rows
    float* norm = share_norm + slices;                        // [slices]: all rows
    int* kept = reinterpret_cast<int*>(norm + slices);        // [slices]: 1 kept, 0 dropped
    T* stage = reinterpret_cast<T*>(kept + slices);           // [rows of the share][columns]
    int tx = threadIdx.x, ty = threadIdx.y, tid = ty * units + tx, threads = lines * units;
    int first_unit = blockIdx.x * units, j = first_unit + tx;
    int per_share = (N + ROW_SHARES - 1) / ROW_SHARES, first_row = blockIdx.y * per_share;
    int rows = max(0, min(N - first_row, per_share));
    float sq[4] = {};
    wait_for_previous_kernel();
    // __restrict__ and the unrolling let a row's loads start before the last row's stores
#pragma unroll 4
    for (int r = ty; r < rows; r += lines) {
        int n = first_row + r;
        size_t k = (size_t)n * H + j;
        const T* grow = gates + (size_t)n * 4 * H + j;
        float d[4];
        float dc_prev = cell_backward(to_f(grow[0]), to_f(grow[H]), to_f(grow[2 * H]),
                                      to_f(grow[3 * H]), dh_rec[k] + to_f(grad_out[k]), dc[k],
                                      c[k], c_prev[k], d);
        dh_rec[k] = 0.f;  // the next split-K product adds into it
        dc[k] = dc_prev;
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            T stored = from_f<T>(d[q]);
            stage[(size_t)r * columns + q * units + tx] = stored;
            float v = to_f(stored);  // the norm of what the products read
            sq[q] += v * v;
        }
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) partial[ty * columns + q * units + tx] = sq[q];
    __syncthreads();
    for (int q = tid; q < slices; q += threads) {
        float total = 0.f;
        for (int line = 0; line < lines; ++line)
            for (int p = 0; p < P; ++p) total += partial[line * columns + q * P + p];
        share_norm[q] = total;
    }
    cluster_arrive();
    cluster_wait();
    for (int q = tid; q < slices; q += threads) {
        float share[ROW_SHARES], total = 0.f;
#pragma unroll
        for (unsigned rank = 0; rank < ROW_SHARES; ++rank)
            share[rank] = cluster_load(share_norm + q, rank);
#pragma unroll
        for (int rank = 0; rank < ROW_SHARES; ++rank) total += share[rank];
        norm[q] = total;
    }
    cluster_arrive();  // this block is done reading the others' shared memory (waited at exit)
    __syncthreads();
    for (int q = tid; q < slices; q += threads) {
        int first = q - q % R;
        kept[q] = rank_of(norm + first, R, q - first) < keep;
    }
    __syncthreads();
    // block slice q is gate q / (units / P)'s slice q % (units / P) of the block's units
    int gate_slices = units / P, hidden_slices = H / P;
    for (int q = tid; q < slices && blockIdx.y == 0; q += threads) {
        int first = q - q % R, position = kept_before(kept, first, q);
        int global = (q / gate_slices) * hidden_slices + first_unit / P + q % gate_slices;
        int region = global / R, to = region * keep + position;
        slot[global] = kept[q] ? to : -1;
        if (kept[q]) index[to] = global;
        if (q == first) write_energy(norm + first, kept + first, R, energy + 2 * region);
    }
    for (int r = ty; r < rows; r += lines) {
        T* drow = dnet + (size_t)(first_row + r) * 4 * H + j;
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            int column = q * units + tx;
            drow[q * H] = kept[column / P] ? stage[(size_t)r * columns + column] : from_f<T>(0.f);
        }
    }
    cluster_wait();
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

#define BACKWARD_COARSE_ENTRY(NAME, T)                                                         \
    extern "C" __global__ void __cluster_dims__(1, ROW_SHARES, 1) NAME(                        \
        float* dh_rec, const T* grad_out, float* dc, const T* gates, const float* c,           \
        const float* c_prev, T* dnet, int N, int H, int P, int R, int keep, int* index,        \
        int* slot, float* energy) {                                                             \
        backward_step_coarse<T>(dh_rec, grad_out, dc, gates, c, c_prev, dnet, N, H, P, R,      \
                                keep, index, slot, energy);                                    \
    }
BACKWARD_COARSE_ENTRY(lstm_backward_step_coarse_float32, float)
BACKWARD_COARSE_ENTRY(lstm_backward_step_coarse_bfloat16, bf16)
