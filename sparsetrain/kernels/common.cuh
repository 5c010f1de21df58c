// Shared by every kernel source: dtype conversions and the tensor-core step.
// The loader pastes this file in front of each .cu file (NVRTC has no include path here).
#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16(x); }


// Programmatic dependent launch (_loader.early_launches): a kernel launched early may start
// while the kernel before it on the stream is still running. It must wait here before it reads
// what that kernel (or any before it) wrote or writes what they read, and on every path before
// it exits (so that its completion implies theirs). It comes first: the cell step with its
// inputs loaded before it ran twice as slow, even launched plainly (benchmarks/NOTES.md v14).
// let_next_kernel_launch lets the next early kernel's blocks launch (they then wait in their
// turn): called once a block's main work is done, else at its exit (right after the wait, the
// next kernel's waiting blocks slowed large and nmt bf16 by 15%). Both are no-ops in a plain
// launch and before sm_90.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void let_next_kernel_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// 4-element vectors (8 B bf16, 16 B float32): one load or store moves a P = 4 slice row.
template <typename T> struct Vec4;
template <> struct Vec4<float> { typedef float4 type; };
template <> struct Vec4<bf16> { typedef uint2 type; };

template <typename T> __device__ __forceinline__ typename Vec4<T>::type load4(const T* p) {
    return *reinterpret_cast<const typename Vec4<T>::type*>(p);
}
template <typename T> __device__ __forceinline__ void store4(T* p, typename Vec4<T>::type v) {
    *reinterpret_cast<typename Vec4<T>::type*>(p) = v;
}
template <typename T> __device__ __forceinline__ typename Vec4<T>::type zero4() {
    typename Vec4<T>::type v;
    memset(&v, 0, sizeof(v));
    return v;
}
__device__ __forceinline__ void load4_floats(const float* p, float v[4]) {
    float4 x = load4(p);
    v[0] = x.x; v[1] = x.y; v[2] = x.z; v[3] = x.w;
}
__device__ __forceinline__ void load4_floats(const bf16* p, float v[4]) {
    uint2 x = load4(p);
    float2 low = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&x.x));
    float2 high = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&x.y));
    v[0] = low.x; v[1] = low.y; v[2] = high.x; v[3] = high.y;
}

// One warp-wide tensor-core step C(16x8, fp32) += A(16xK) B(Kx8), operands from shared memory.
// Fragment layouts are PTX's (g = lane / 4 picks the row of A / column of B, t = lane % 4 the
// k position). Three shared-memory layouts are read:
//   A row-major:  A[m][k] (k contiguous)      -> frag_a_rows
//   A k-major:    X[k][m] (m contiguous)      -> frag_a_kmajor   (X = A^T as stored)
//   B k-major:    B[k][n] (n contiguous)      -> frag_b2_kmajor  (two n8 tiles at once)
// bf16 uses ldmatrix (.trans for the k-major ones; rows must be 16-byte aligned); tf32 reads
// single elements. Pointers point at the tile's (m0, k0) / (k0, m0) / (k0, n0) element.
template <typename T> struct Mma;

__device__ __forceinline__ unsigned smem_address(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

template <> struct Mma<bf16> {
    static constexpr int K = 16;  // m16n8k16, bf16 operands, fp32 accumulate
    static __device__ __forceinline__ void ldmatrix4(unsigned r[4], const bf16* row) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_address(row)));
    }
    static __device__ __forceinline__ void ldmatrix4_trans(unsigned r[4], const bf16* row) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_address(row)));
    }
    // Lane l names row l % 8 of 8x8 matrix l / 8; matrices ordered as the fragment registers.
    static __device__ __forceinline__ void frag_a_rows(unsigned a[4], const bf16* A, int lda, int lane) {
        int q = lane >> 3, r = lane & 7;
        ldmatrix4(a, A + (r + 8 * (q & 1)) * lda + 8 * (q >> 1));
    }
    static __device__ __forceinline__ void frag_a_kmajor(unsigned a[4], const bf16* X, int ldx, int lane) {
        int q = lane >> 3, r = lane & 7;
        ldmatrix4_trans(a, X + (r + 8 * (q >> 1)) * ldx + 8 * (q & 1));
    }
    static __device__ __forceinline__ void frag_b2_kmajor(unsigned b0[2], unsigned b1[2], const bf16* B,
                                                          int ldb, int lane) {
        int q = lane >> 3, r = lane & 7;
        unsigned v[4];
        ldmatrix4_trans(v, B + (r + 8 * (q & 1)) * ldb + 8 * (q >> 1));
        b0[0] = v[0]; b0[1] = v[1]; b1[0] = v[2]; b1[1] = v[3];
    }
    static __device__ __forceinline__ void mma(float c[4], const unsigned a[4], const unsigned b[2]) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
            "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};

template <> struct Mma<float> {
    static constexpr int K = 8;  // m16n8k8, tf32 operands, fp32 accumulate
    static __device__ __forceinline__ unsigned tf32(float x) {
        unsigned r;
        asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
        return r;
    }
    static __device__ __forceinline__ void frag_a_rows(unsigned a[4], const float* A, int lda, int lane) {
        int g = lane >> 2, t = lane & 3;
        a[0] = tf32(A[g * lda + t]);
        a[1] = tf32(A[(g + 8) * lda + t]);
        a[2] = tf32(A[g * lda + t + 4]);
        a[3] = tf32(A[(g + 8) * lda + t + 4]);
    }
    static __device__ __forceinline__ void frag_a_kmajor(unsigned a[4], const float* X, int ldx, int lane) {
        int g = lane >> 2, t = lane & 3;
        a[0] = tf32(X[t * ldx + g]);
        a[1] = tf32(X[t * ldx + g + 8]);
        a[2] = tf32(X[(t + 4) * ldx + g]);
        a[3] = tf32(X[(t + 4) * ldx + g + 8]);
    }
    static __device__ __forceinline__ void frag_b2_kmajor(unsigned b0[2], unsigned b1[2], const float* B,
                                                          int ldb, int lane) {
        int g = lane >> 2, t = lane & 3;
        b0[0] = tf32(B[t * ldb + g]);
        b0[1] = tf32(B[(t + 4) * ldb + g]);
        b1[0] = tf32(B[t * ldb + g + 8]);
        b1[1] = tf32(B[(t + 4) * ldb + g + 8]);
    }
    static __device__ __forceinline__ void mma(float c[4], const unsigned a[4], const unsigned b[2]) {
        asm volatile(
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
            "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};

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

// region_wgrad's shared accumulator (products.cu and hopper.cu): every row of the block's
// regions, `stride` floats apart. Each step adds its product into the rows of its kept slices.
// The row of compact column `compact` in a step that kept global slices idx[]:
__device__ __forceinline__ float* kept_row(float* acc, const int* idx, int compact, int P, int R,
                                           int first_region, int stride) {
    return acc + ((idx[compact / P] - first_region * R) * P + compact % P) * stride;
}
__device__ __forceinline__ void add_pair(float* at, float a, float b) {
    float2* pair = reinterpret_cast<float2*>(at);
    float2 sum = *pair;
    sum.x += a;
    sum.y += b;
    *pair = sum;
}
// The accumulator's rows x COLUMNS written to dW_block (row r at dW_block + r * F) by the
// block's THREADS, only the first `columns_left` columns; added instead where the steps were
// split between blocks. (Compile-time sizes: with blockDim.x the float32 wgrad spilled.)
template <int THREADS, int COLUMNS>
__device__ __forceinline__ void store_accumulator(const float* acc, int rows, int stride,
                                                  float* dW_block, int F, int columns_left,
                                                  bool add) {
    for (int i = threadIdx.x; i < rows * COLUMNS / 2; i += THREADS) {
        int r = 2 * i / COLUMNS, col = 2 * i % COLUMNS;
        if (col >= columns_left) continue;
        const float* pair = acc + r * stride + col;
        store_pair(dW_block + (size_t)r * F + col, pair[0], pair[1], add);
    }
}

// How region_wgrad (products.cu, hopper.cu) sums over the steps: into a shared accumulator
// row of each step's kept slices; or in registers over all steps, written once, with no
// shared accumulator and no wait at the end of each step, where every step keeps every slice
// in order (KEEP_ALL: S = 0, as dense and fine run; compact column m is dW row m0 + m) or
// where A is dnet itself with the slices each step dropped read as zeros (MASKED: Kc = 4H,
// R = 1, S = 0, each slice its own region; the dropped slices cost tensor-core work but no
// memory traffic).
enum WgradSum { SHARED_ACCUMULATOR, KEEP_ALL, MASKED };

// Asynchronous 16-byte global -> shared copies (sm_80+): a tile's loads stay in flight while the
// tensor cores work on earlier tiles. Bytes past `src_bytes` (0..16) are filled with zeros, so
// edges and padding need no separate stores. Groups complete in the order they were committed.
__device__ __forceinline__ void copy_async16(void* shared, const void* global, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :: "r"(smem_address(shared)), "l"(global), "r"(src_bytes));
}
// The same for 8 bytes (through L1: .cg takes 16-byte copies only): a bf16 slice of P = 4.
__device__ __forceinline__ void copy_async8(void* shared, const void* global, int src_bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n"
                 :: "r"(smem_address(shared)), "l"(global), "r"(src_bytes));
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

// MASKED: table[step * PIECES + piece] says which 8-byte halves of the 16-byte piece at column
// m0 + piece * CHUNK of dnet (Kc columns) each of the block's steps kept, from slot (steps x
// Kc / P; -1: dropped): bit 0 the first half, bit 1 the second (both or neither where a slice
// spans the piece). Ends with a barrier.
template <int CHUNK, int PIECES, int THREADS>
__device__ void kept_halves(const int* slot, int P, int Kc, int m0, int first_step, int steps,
                            int* table) {
    int slices = Kc / P;
    for (int i = threadIdx.x; i < steps * PIECES; i += THREADS) {
        const int* step_slot = slot + (size_t)(first_step + i / PIECES) * slices;
        int column = m0 + CHUNK * (i % PIECES), code = 0;
#pragma unroll
        for (int half = 0; half < 2; ++half)
            code |= (column < Kc && step_slot[(column + CHUNK / 2 * half) / P] >= 0) << half;
        table[i] = code;
    }
    __syncthreads();
}
// A 16-byte piece of dnet (from) into shared memory, its dropped halves (code as kept_halves
// gives it; 0 also outside the tile) as zeros; `any` is a valid address that is not read.
template <typename T>
__device__ __forceinline__ void copy_masked(T* to, const T* from, const void* any, int code) {
    constexpr int HALF = 8 / sizeof(T);
    if (code != 2) {  // a dropped second half: the zeros past src_bytes
        copy_async16(to, code ? from : any, code == 3 ? 16 : 8 * code);
    } else {
        copy_async8(to, any, 0);
        copy_async8(to + HALF, from + HALF, 8);
    }
}
template <int PENDING> __device__ __forceinline__ void copy_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" :: "n"(PENDING));
}

// Rank of `mine` among `count` norms: how many beat it (larger, or equal with lower index).
// The one ranking rule of every structured selection (ties keep the lower index).
__device__ __forceinline__ int rank_of(const float* norm, int count, int mine) {
    int rank = 0;
    for (int q = 0; q < count; ++q)
        rank += (norm[q] > norm[mine]) || (norm[q] == norm[mine] && q < mine);
    return rank;
}

// The place of entry q among the kept entries of its group (those from `first`, kept[] 0 or 1):
// its compact position, the selections' order of kept slices or blocks.
__device__ __forceinline__ int kept_before(const int* kept, int first, int q) {
    int position = 0;
    for (int r = first; r < q; ++r) position += kept[r];
    return position;
}

// A group's (kept, total) squared norm into energy[0], energy[1], the norms summed in order
// (selections that keep alike must report alike: select.cu's fine and pointwise.cu's coarse).
__device__ __forceinline__ void write_energy(const float* norm, const int* kept, int count,
                                             float* energy) {
    float total = 0.f, part = 0.f;
    for (int q = 0; q < count; ++q) { total += norm[q]; part += kept[q] ? norm[q] : 0.f; }
    energy[0] = part;
    energy[1] = total;
}

// The coarse selection made inside the per-step product (gather_mm with a StepSelection):
// each region keeps its `keep` slices of largest squared norm (the sum over the cell step's
// row chunks of partial[chunk][slice], added in chunk order, so every block that decides a
// region decides it alike), in ascending slice order. R is a power of two up to 32, so a
// region's slices sit in R adjacent lanes of one warp (slice q of the regions touched in
// thread q mod blockDim): each lane sums its own slice's norms straight from global memory,
// and the ranking, positions and energies are warp shuffles (one memory round trip, one
// barrier). A block decides only the regions that its compact slices [first_slice,
// end_slice) fall in, and puts the first dnet column / weight row (global slice * P) of each
// of them in rows[j - first_slice]. The blocks of the first column tile also write what the
// batched products and the statistics need: the index (index[j] = global slice), slot[slice]
// (compact slice or -1) and energy[region] (kept, total squared norm) here, and the compact
// values from their A tiles (store_compact).
struct StepSelection {
    const float* partial;  // chunks x slices (all 4H / P slices)
    int chunks, slices, R, keep;
    // Where the block writes the selection (nullptr: another block does)
    int* index;
    int* slot;
    float* energy;
    void* values;          // N x Kc compact values, the A operand's dtype
};

// The selection as one block of a select entry sees it: the first column tile writes the
// compact values, its first row block also the index, slots and energies.
__device__ __forceinline__ StepSelection step_selection(const float* partial, int chunks,
                                                        int slices, int R, int keep, int* index,
                                                        int* slot, float* energy, void* values) {
    bool first_column = blockIdx.x == 0, first = first_column && blockIdx.y == 0;
    return StepSelection{partial, chunks, slices, R, keep, first ? index : nullptr,
                         first ? slot : nullptr, first ? energy : nullptr,
                         first_column ? values : nullptr};
}

__device__ void decide_coarse(const StepSelection& selection, int P, int first_slice,
                              int end_slice, int* rows) {
    int R = selection.R, keep = selection.keep, lane = threadIdx.x % 32, member = lane % R;
    int first_region = first_slice / keep, end_region = (end_slice + keep - 1) / keep;
    int count = max(0, end_region - first_region) * R;
    unsigned group = (R == 32 ? 0xffffffffu : (1u << R) - 1) << (lane - member);
    for (int base = 0; base < count; base += blockDim.x) {  // the same trip count in every warp
        int q = base + threadIdx.x;
        bool real = q < count;  // whole regions are real or not (R divides 32)
        float norm = 0.f;
        if (real) {
            const float* column = selection.partial + first_region * R + q;
#pragma unroll 8
            for (int c = 0; c < selection.chunks; ++c) norm += column[(size_t)c * selection.slices];
        }
        int rank = 0;
        for (int r = 0; r < R; ++r) {
            float other = __shfl_sync(0xffffffffu, norm, r, R);
            rank += (other > norm) || (other == norm && r < member);
        }
        bool kept = rank < keep;
        unsigned ballot = __ballot_sync(0xffffffffu, kept);
        int position = __popc(ballot & group & ((1u << lane) - 1));
        float part = kept ? norm : 0.f, total = norm;
        for (int offset = R / 2; offset > 0; offset /= 2) {
            part += __shfl_xor_sync(0xffffffffu, part, offset, R);
            total += __shfl_xor_sync(0xffffffffu, total, offset, R);
        }
        if (!real) continue;
        int region = first_region + q / R, slice = first_region * R + q;
        int j = region * keep + position;
        if (selection.index) {
            selection.slot[slice] = kept ? j : -1;
            if (member == 0) {
                selection.energy[2 * region] = part;
                selection.energy[2 * region + 1] = total;
            }
        }
        if (!kept || j < first_slice || j >= end_slice) continue;
        rows[j - first_slice] = slice * P;
        if (selection.index) selection.index[j] = slice;
    }
    __syncthreads();
}

// A gather block's share of Kc (Kc split over gridDim.z in whole BK-deep tiles) and, in
// rows[] (shared memory), the first B row (global slice * P) of each compact slice in it:
// read from the group's index `idx`, or decided (SELECT; then idx is unused).
struct KShare {
    int begin, end, tiles, first_slice;
};
template <int BK, bool SELECT>
__device__ KShare gather_rows(const int* idx, const StepSelection& selection, int P, int Kc,
                              int* rows) {
    int k_len = ((Kc + gridDim.z - 1) / gridDim.z + BK - 1) / BK * BK;
    KShare share;
    share.begin = blockIdx.z * k_len;
    share.end = min(Kc, share.begin + k_len);
    share.tiles = share.begin < share.end ? (share.end - share.begin + BK - 1) / BK : 0;
    share.first_slice = share.begin / P;
    int end_slice = (share.end + P - 1) / P;
    if constexpr (SELECT) {
        decide_coarse(selection, P, share.first_slice, end_slice, rows);
    } else {
        for (int j = share.first_slice + threadIdx.x; j < end_slice; j += blockDim.x)
            rows[j - share.first_slice] = idx[j] * P;
        __syncthreads();
    }
    return share;
}

// A thread's A chunk (16 bytes at `shared`, landed: its own copy, waited for) written out as
// compact values row x columns k .. (SELECT, blocks of the first column tile).
template <typename T>
__device__ __forceinline__ void store_compact(const StepSelection& selection, int Kc, int row,
                                              int k, const T* shared) {
    T* values = static_cast<T*>(selection.values) + (size_t)row * Kc + k;
    *reinterpret_cast<uint4*>(values) = *reinterpret_cast<const uint4*>(shared);
}

// Under SELECT, a thread's A chunks in one tile all sit at the same compact columns k .. k +
// CHUNK - 1 (in different rows), so it looks up where they lie in dnet once per tile. P is a
// power of two there. A bf16 slice of P = 4 is half a chunk, and the chunk's two slices need
// not be neighbours: `second` is where its second half lies (one 16-byte copy where they are
// neighbours and aligned, else two of 8 bytes).
struct ChunkColumns {
    int first, second;
};
template <typename T>
__device__ __forceinline__ ChunkColumns chunk_columns(const int* rows, int first_slice, int k,
                                                      int P, int p_shift) {
    constexpr int HALF = 8 / sizeof(T);
    int first = rows[(k >> p_shift) - first_slice] + (k & (P - 1));
    if (P > HALF) return {first, first + HALF};
    return {first, rows[((k + HALF) >> p_shift) - first_slice] + ((k + HALF) & (P - 1))};
}
template <typename T>
__device__ __forceinline__ void copy_selected(T* shared, const T* row, ChunkColumns columns,
                                              bool inside) {
    constexpr int HALF = 8 / sizeof(T);
    if (columns.second == columns.first + HALF && columns.first % (2 * HALF) == 0) {
        copy_async16(shared, inside ? row + columns.first : row, inside ? 16 : 0);
        return;
    }
    copy_async8(shared, inside ? row + columns.first : row, inside ? 8 : 0);
    copy_async8(shared + HALF, inside ? row + columns.second : row, inside ? 8 : 0);
}
