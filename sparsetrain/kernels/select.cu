// Structured selections from the squared slice / block norms of one step's dnet, writing the
// compact form and its index (layouts in sparsetrain.sparsify; ties keep the lower index).
// One block per region (coarse) or column slice (fine); blockDim.x >= R (or N/My), <= 1024.

// Rank of `mine` among `count` norms: how many beat it (larger, or equal with lower index).
__device__ __forceinline__ int rank_of(const float* norm, int count, int mine) {
    int rank = 0;
    for (int q = 0; q < count; ++q)
        rank += (norm[q] > norm[mine]) || (norm[q] == norm[mine] && q < mine);
    return rank;
}

// Coarse: partial norms [chunks][4H/P]; region g holds slices g*R .. g*R+R-1.
// Writes index[g*(R-S) + pos] (global slice number), slot[slice] (compact slice or -1),
// values [N][G*(R-S)*P] and energy[g] = (kept, total) squared norm.
template <typename T>
__device__ void coarse_select(const float* partial, int chunks, const T* dnet, int N, int cols,
                              int P, int R, int S, int* index, int* slot, T* values,
                              float* energy) {
    __shared__ float norm[1024];
    __shared__ int kept[1024];
    __shared__ int kept_slice[1024];
    int r = threadIdx.x, g = blockIdx.x, slices = cols / P, keep = R - S;
    if (r < R) {
        float s = 0.f;
        for (int k = 0; k < chunks; ++k) s += partial[(size_t)k * slices + g * R + r];
        norm[r] = s;
    }
    __syncthreads();
    if (r < R) kept[r] = rank_of(norm, R, r) < keep;
    __syncthreads();
    if (r < R) {
        int pos = 0;
        for (int q = 0; q < r; ++q) pos += kept[q];
        int global = g * R + r;
        if (kept[r]) {
            index[g * keep + pos] = global;
            kept_slice[pos] = global;
            slot[global] = g * keep + pos;
        } else {
            slot[global] = -1;
        }
    }
    __syncthreads();
    if (r == 0) {
        float total = 0.f, part = 0.f;
        for (int q = 0; q < R; ++q) { total += norm[q]; part += kept[q] ? norm[q] : 0.f; }
        energy[2 * g] = part;
        energy[2 * g + 1] = total;
    }
    int width = keep * P, row_width = (cols / (P * R)) * width;
    for (int e = r; e < N * width; e += blockDim.x) {
        int n = e / width, qc = e % width;
        values[(size_t)n * row_width + g * width + qc] =
            dnet[(size_t)n * cols + kept_slice[qc / P] * P + qc % P];
    }
}

// Fine: norms [C][B] (B = N/My row blocks); slice c is columns c*Mx .. c*Mx+Mx-1.
// Writes index[c*(B-K) + pos] (row-block number), values [C][B-K][My][Mx],
// keep_mask[b*C + c] (1 kept, 0 dropped) and energy[c] = (kept, total).
template <typename T>
__device__ void fine_select(const float* norms, const T* dnet, int N, int cols, int My, int Mx,
                            int K, int* index, T* values, unsigned char* keep_mask,
                            float* energy) {
    __shared__ float norm[1024];
    __shared__ int kept[1024];
    __shared__ int kept_block[1024];
    int b = threadIdx.x, c = blockIdx.x, B = N / My, keep = B - K, C = cols / Mx;
    if (b < B) norm[b] = norms[(size_t)c * B + b];
    __syncthreads();
    if (b < B) kept[b] = rank_of(norm, B, b) < keep;
    __syncthreads();
    if (b < B) {
        int pos = 0;
        for (int q = 0; q < b; ++q) pos += kept[q];
        if (kept[b]) {
            index[c * keep + pos] = b;
            kept_block[pos] = b;
        }
        keep_mask[(size_t)b * C + c] = kept[b];
    }
    __syncthreads();
    if (b == 0) {
        float total = 0.f, part = 0.f;
        for (int q = 0; q < B; ++q) { total += norm[q]; part += kept[q] ? norm[q] : 0.f; }
        energy[2 * c] = part;
        energy[2 * c + 1] = total;
    }
    int block = My * Mx;
    for (int e = b; e < keep * block; e += blockDim.x) {
        int pos = e / block, y = (e % block) / Mx, x = e % Mx;
        values[(size_t)c * keep * block + e] =
            dnet[(size_t)(kept_block[pos] * My + y) * cols + c * Mx + x];
    }
}

#define COARSE_ENTRY(NAME, T)                                                                 \
    extern "C" __global__ void NAME(const float* partial, int chunks, const T* dnet, int N,    \
                                    int cols, int P, int R, int S, int* index, int* slot,      \
                                    T* values, float* energy) {                                \
        coarse_select<T>(partial, chunks, dnet, N, cols, P, R, S, index, slot, values, energy); \
    }
COARSE_ENTRY(coarse_select_float32, float)
COARSE_ENTRY(coarse_select_bfloat16, bf16)

#define FINE_ENTRY(NAME, T)                                                                  \
    extern "C" __global__ void NAME(const float* norms, const T* dnet, int N, int cols, int My, \
                                    int Mx, int K, int* index, T* values,                     \
                                    unsigned char* keep_mask, float* energy) {                \
        fine_select<T>(norms, dnet, N, cols, My, Mx, K, index, values, keep_mask, energy);    \
    }
FINE_ENTRY(fine_select_float32, float)
FINE_ENTRY(fine_select_bfloat16, bf16)
