// A matrix's transpose, for the products that read both operands K-major (hopper.cu's tf32
// kmajor_mm_tma): out (C x R) = in (R x C)^T, both row-major. Each block moves a 32 x 32 tile
// through shared memory, so that both the reads of `in` and the writes of `out` run along rows
// (a tile's column is one more than 32 wide: the transposed reads then hit 32 different banks).
// torch's strided copy of a transposed view moved ~0.9 TB/s on H100 (benchmarks/NOTES.md v10).
#define TRANSPOSE_TILE 32
#define TRANSPOSE_ROWS 8   // threads per tile column: each moves TRANSPOSE_TILE / 8 elements

template <typename T>
__device__ void transpose_tiles(const T* in, T* out, int R, int C) {
    __shared__ T tile[TRANSPOSE_TILE][TRANSPOSE_TILE + 1];
    int c0 = blockIdx.x * TRANSPOSE_TILE, r0 = blockIdx.y * TRANSPOSE_TILE;
    int tx = threadIdx.x, ty = threadIdx.y;
#pragma unroll
    for (int i = ty; i < TRANSPOSE_TILE; i += TRANSPOSE_ROWS)
        if (r0 + i < R && c0 + tx < C) tile[i][tx] = in[(size_t)(r0 + i) * C + c0 + tx];
    __syncthreads();
#pragma unroll
    for (int i = ty; i < TRANSPOSE_TILE; i += TRANSPOSE_ROWS)
        if (c0 + i < C && r0 + tx < R) out[(size_t)(c0 + i) * R + r0 + tx] = tile[tx][i];
}
#define TRANSPOSE_ENTRY(NAME, T)                                                             \
    extern "C" __global__ void NAME(const T* in, T* out, int R, int C) {                     \
        transpose_tiles<T>(in, out, R, C);                                                   \
    }
TRANSPOSE_ENTRY(transpose_float32, float)
TRANSPOSE_ENTRY(transpose_bfloat16, bf16)
