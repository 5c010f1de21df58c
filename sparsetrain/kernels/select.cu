// The fine selection from the squared block norms of one step's dnet: the dropped blocks
// zeroed in dnet, the kept ones' index and, where asked, their compact form (layouts in
// sparsetrain.sparsify; ties keep the lower index, common.cuh's rank_of). Coarse selects inside
// its per-step product (common.cuh's decide_coarse), or on its own (coarse_select) where the
// product runs dense over dnet or reads the step's compact form. The decision is tiny; moving
// dnet's blocks is what takes time.

#define MAX_GROUP 1024

// Fine: norms [C][B] (B = N/My row blocks). Block i decides the `group` slices from
// c = i * group (slice c: columns c*Mx .. c*Mx+Mx-1; group * B <= MAX_GROUP). Writes
// index[c*(B-K) + pos] (row-block numbers, ascending), energy[c] = (kept, total), zeroes the
// dropped blocks in dnet (the products then run on dnet as it stands) and, unless values is
// null, copies the kept ones into values [C][B-K][My][Mx]. A block takes adjacent slices so
// that its threads walk each row's group * Mx columns together: whole sectors of dnet. One
// slice a block moved 8 of every 32 bytes it touched (bf16, Mx = 4): 14.6 us a step at xl.
template <typename T>
__device__ void fine_select(const float* norms, T* dnet, int N, int cols, int My, int Mx,
                            int K, int group, int* index, T* values, float* energy) {
    __shared__ float norm[MAX_GROUP];
    __shared__ int kept[MAX_GROUP];
    __shared__ int position[MAX_GROUP];
    int tid = threadIdx.x, B = N / My, keep = B - K;
    int first = blockIdx.x * group, slices = min(group, cols / Mx - first), pairs = slices * B;
    for (int e = tid; e < pairs; e += blockDim.x) norm[e] = norms[(size_t)first * B + e];
    __syncthreads();
    for (int e = tid; e < pairs; e += blockDim.x)
        kept[e] = rank_of(norm + e / B * B, B, e % B) < keep;
    __syncthreads();
    for (int e = tid; e < pairs; e += blockDim.x) {
        position[e] = kept[e] ? kept_before(kept, e / B * B, e) : -1;
        if (kept[e]) index[(size_t)(first + e / B) * keep + position[e]] = e % B;
    }
    for (int g = tid; g < slices; g += blockDim.x)
        write_energy(norm + g * B, kept + g * B, B, energy + 2 * (first + g));
    __syncthreads();
    int width = Mx % 4 ? 1 : 4;  // elements moved at once
    int per_slice = Mx / width, per_row = slices * per_slice;
    for (int e = tid; e < N * per_row; e += blockDim.x) {  // e walks the group's rows in turn
        int r = e / per_row, g = e % per_row / per_slice, x = e % per_slice * width;
        int q = g * B + r / My;
        T* at = dnet + (size_t)r * cols + (first + g) * Mx + x;
        if (kept[q]) {
            if (values == nullptr) continue;
            T* to = values + ((size_t)(first + g) * keep + position[q]) * My * Mx
                  + r % My * Mx + x;
            if (width == 4) store4(to, load4(at));
            else *to = *at;
        } else if (width == 4) {
            store4(at, zero4<T>());
        } else {
            *at = from_f<T>(0.f);
        }
    }
}

// A backward's statistics in one launch: from energy[t][g] = (kept, total) squared norms of each
// step's groups (coarse: regions; fine: slices), out = sparsify.summarize of the per-step
// records (kept fraction kept / of, ||s||, ||dnet||), in double: the sums over the steps of the
// dropped fraction, of (||s|| / ||dnet||)^2 and of ||s|| / ||dnet|| (1 where dnet is zero).
// One block; a warp per step, summed in a fixed order.
extern "C" __global__ void step_summary(const float* energy, int steps, int groups, int kept,
                                        int of, double* out) {
    __shared__ double sums[2][32];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    double ratios = 0.0, squares = 0.0;
    for (int t = warp; t < steps; t += warps) {
        float part = 0.f, total = 0.f;
        for (int g = lane; g < groups; g += 32) {
            part += energy[((size_t)t * groups + g) * 2];
            total += energy[((size_t)t * groups + g) * 2 + 1];
        }
        for (int offset = 16; offset > 0; offset /= 2) {
            part += __shfl_xor_sync(0xffffffffu, part, offset);
            total += __shfl_xor_sync(0xffffffffu, total, offset);
        }
        double kept_norm = sqrt((double)fmaxf(part, 0.f));
        double total_norm = sqrt((double)fmaxf(total, 0.f));
        double ratio = total_norm > 0.0 ? kept_norm / total_norm : 1.0;
        ratios += ratio;
        squares += ratio * ratio;
    }
    if (lane == 0) {
        sums[0][warp] = squares;
        sums[1][warp] = ratios;
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    double square_sum = 0.0, ratio_sum = 0.0;
    for (int w = 0; w < warps; ++w) {
        square_sum += sums[0][w];
        ratio_sum += sums[1][w];
    }
    out[0] = steps * (1.0 - (double)kept / of);
    out[1] = square_sum;
    out[2] = ratio_sum;
}

#define FINE_ENTRY(NAME, T)                                                                  \
    extern "C" __global__ void NAME(const float* norms, T* dnet, int N, int cols, int My,       \
                                    int Mx, int K, int group, int* index, T* values,          \
                                    float* energy) {                                           \
        wait_for_previous_kernel();                                                            \
        fine_select<T>(norms, dnet, N, cols, My, Mx, K, group, index, values, energy);        \
    }
FINE_ENTRY(fine_select_float32, float)
FINE_ENTRY(fine_select_bfloat16, bf16)

// Coarse: zeroes in dnet (rows = steps x N, of `width`) the slices each step dropped
// (slot[t][j] is -1), so that the weight gradients run over it as over dense's. A thread per 4
// columns (P is a multiple of 4, so they lie in one slice), over the rows in the grid's stride.
template <typename T>
__device__ void zero_dropped_slices(T* dnet, const int* slot, int P, int N, int width, int rows) {
    int column = 4 * (blockIdx.x * blockDim.x + threadIdx.x);
    if (column >= width) return;
    int slices = width / P, slice = column / P;
    for (int row = blockIdx.y; row < rows; row += gridDim.y)
        if (slot[(row / N) * slices + slice] < 0)
            store4(dnet + (size_t)row * width + column, zero4<T>());
}
#define ZERO_DROPPED_ENTRY(NAME, T)                                                          \
    extern "C" __global__ void NAME(T* dnet, const int* slot, int P, int N, int width,          \
                                    int rows) {                                                \
        zero_dropped_slices<T>(dnet, slot, P, N, width, rows);                                  \
    }
ZERO_DROPPED_ENTRY(zero_dropped_slices_float32, float)
ZERO_DROPPED_ENTRY(zero_dropped_slices_bfloat16, bf16)

// Coarse's selection on its own: for a per-step product that runs dense over dnet_t (float32
// on tf32 wgmma, which reads no index), or, with `values`, for the plain indexed product over
// the step's compact form (bf16 where a step's dnet is large: the product then reads its A
// operand in whole 16-byte rows, not in the 8-byte pieces select_gather_mm gathers). A block
// takes `regions_per_block` regions (their R * P columns of dnet_t) and a share of the rows
// (blockIdx.y): it decides its regions as decide_coarse does, reading only their partial norms
// (the blocks of the other row shares decide them alike: few shares, so that few blocks read
// the same norms), rewrites its rows of them with the dropped slices as zeros and, unless
// values is null, copies the kept ones into values (N x Kc, Kc = regions * keep * P); the first
// row share writes their index, slot and energy. A thread moves up to COARSE_SELECT_QUADS
// pieces of 4 columns, loaded before the decision (they do not depend on it), and a warp's
// stores cover whole runs of a row: every piece is stored back, the kept ones unchanged, so no
// 32-byte sector of dnet is written in part. Dynamic shared memory: an int per kept slice of
// the block's regions (decide_coarse's rows), then one per slice (its compact slice, or -1).
constexpr int COARSE_SELECT_QUADS = 4;
template <typename T>
__device__ void coarse_select(const float* partial, int chunks, int R, int keep, int P,
                              int regions_per_block, T* __restrict__ dnet, int N, int width,
                              int* index, int* slot, float* energy, T* __restrict__ values) {
    extern __shared__ int selected_rows[];
    int slices = width / P, regions = slices / R, Kc = regions * keep * P;
    int first_region = blockIdx.x * regions_per_block;
    int end_region = min(regions, first_region + regions_per_block);
    int quads = (end_region - first_region) * R * P / 4, first_column = first_region * R * P;
    int per_block = (N + gridDim.y - 1) / gridDim.y, first_row = blockIdx.y * per_block;
    int count = max(0, min(N, first_row + per_block) - first_row) * quads;
    typename Vec4<T>::type pieces[COARSE_SELECT_QUADS];
    int at[COARSE_SELECT_QUADS];  // the piece's offset in dnet, or -1 past the block's share
#pragma unroll
    for (int u = 0; u < COARSE_SELECT_QUADS; ++u) {
        int e = u * blockDim.x + threadIdx.x;
        at[u] = e < count ? (first_row + e / quads) * width + first_column + 4 * (e % quads) : -1;
        if (at[u] >= 0) pieces[u] = load4(dnet + at[u]);
    }
    int* compact = selected_rows + regions_per_block * keep;
    for (int q = threadIdx.x; q < regions_per_block * R; q += blockDim.x) compact[q] = -1;
    bool first = blockIdx.y == 0;
    StepSelection selection{partial, chunks, slices, R, keep, first ? index : nullptr,
                            first ? slot : nullptr, first ? energy : nullptr, nullptr};
    decide_coarse(selection, P, first_region * keep, end_region * keep, selected_rows);
    for (int j = threadIdx.x; j < (end_region - first_region) * keep; j += blockDim.x)
        compact[selected_rows[j] / P - first_region * R] = first_region * keep + j;
    __syncthreads();
#pragma unroll
    for (int u = 0; u < COARSE_SELECT_QUADS; ++u) {
        if (at[u] < 0) continue;
        int e = u * blockDim.x + threadIdx.x, column = 4 * (e % quads);
        int slice = compact[column / P];
        store4(dnet + at[u], slice < 0 ? zero4<T>() : pieces[u]);
        if (slice >= 0 && values != nullptr)
            store4(values + (first_row + e / quads) * Kc + slice * P + column % P, pieces[u]);
    }
}
#define COARSE_SELECT_ENTRY(NAME, T)                                                         \
    extern "C" __global__ void NAME(const float* partial, int chunks, int R, int keep, int P, \
                                    int regions_per_block, T* dnet, int N, int width,         \
                                    int* index, int* slot, float* energy, T* values) {        \
        wait_for_previous_kernel();                                                    \
        coarse_select<T>(partial, chunks, R, keep, P, regions_per_block, dnet, N, width,      \
                         index, slot, energy, values);                                        \
    }
COARSE_SELECT_ENTRY(coarse_select_float32, float)
COARSE_SELECT_ENTRY(coarse_select_bfloat16, bf16)
