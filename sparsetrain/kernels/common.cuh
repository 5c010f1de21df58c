// Shared by every kernel source: dtype conversions and the tensor-core step.
// The loader pastes this file in front of each .cu file (NVRTC has no include path here).
#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16(x); }


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

// Asynchronous 16-byte global -> shared copies (sm_80+): a tile's loads stay in flight while the
// tensor cores work on earlier tiles. Bytes past `src_bytes` (0..16) are filled with zeros, so
// edges and padding need no separate stores. Groups complete in the order they were committed.
__device__ __forceinline__ void copy_async16(void* shared, const void* global, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :: "r"(smem_address(shared)), "l"(global), "r"(src_bytes));
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int PENDING> __device__ __forceinline__ void copy_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" :: "n"(PENDING));
}
