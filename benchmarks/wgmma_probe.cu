// One 64 x 64 x 16 wgmma from shared-memory descriptors (no swizzle), to learn which
// leading / stride byte offsets the MN-major ("transposed") B operand takes. See wgmma_probe.py.

#include <cuda_bf16.h>
typedef __nv_bfloat16 bf16;
__device__ __forceinline__ unsigned long long descriptor(const void* smem, int lbo, int sbo) {
    unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    return (unsigned long long)((addr & 0x3FFFF) >> 4) | ((unsigned long long)((lbo >> 4) & 0x3FFF) << 16)
         | ((unsigned long long)((sbo >> 4) & 0x3FFF) << 32);
}
// A: 64 x 16 row-major global; B: 16 x 64 row-major (n contiguous) global; D: 64 x 64.
// smem A K-major core matrices: (m/8, k/8) at ((m/8)*2 + k/8)*64 el -> K-adjacent 128 B, M-adjacent 256 B.
// smem B MN-major core matrices: core (k/8, n/8) at ((n/8)*2 + k/8)*64 el, inside (k%8)*8 + n%8
//   -> K-adjacent 128 B, N-adjacent 256 B.
extern "C" __global__ void probe(const bf16* A, const bf16* B, float* D, int lbo_a, int sbo_a,
                                 int lbo_b, int sbo_b, int tnsp) {
    __shared__ __align__(1024) bf16 As[64 * 16];
    __shared__ __align__(1024) bf16 Bs[16 * 64];
    int tid = threadIdx.x;
    for (int e = tid; e < 64 * 16; e += 128) {
        int m = e / 16, k = e % 16;
        As[((m / 8) * 2 + k / 8) * 64 + (m % 8) * 8 + k % 8] = A[e];
        int kb = e / 64, n = e % 64;
        Bs[((n / 8) * 2 + kb / 8) * 64 + (kb % 8) * 8 + n % 8] = B[e];
    }
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    float d[32];
    for (int i = 0; i < 32; ++i) d[i] = 0.f;
    unsigned long long da = descriptor(As, lbo_a, sbo_a), db = descriptor(Bs, lbo_b, sbo_b);
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
    if (tnsp) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 1;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]) : "l"(da), "l"(db));
    } else {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]) : "l"(da), "l"(db));
    }
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    int warp = tid / 32, lane = tid % 32;
    for (int i = 0; i < 8; ++i)
        for (int e = 0; e < 4; ++e) {
            int row = warp * 16 + lane / 4 + 8 * (e / 2), col = 8 * i + 2 * (lane % 4) + e % 2;
            D[row * 64 + col] = d[i * 4 + e];
        }
}
