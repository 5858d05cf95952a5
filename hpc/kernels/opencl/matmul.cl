/* Tiled matrix product C = A B (row-major, M x K times K x N), T = float or double
 * (#define'd by the host). Each work-group computes a TS x TS tile of C, staging TS x TS
 * tiles of A and B through local memory so each global element is read M/TS (N/TS) times
 * instead of M (N) times. The global size is rounded up to a multiple of TS; out-of-range
 * work-items load zeros and store nothing.
 */
#ifndef TS
#define TS 16
#endif

__kernel __attribute__((reqd_work_group_size(TS, TS, 1)))
void matmul_tiled(__global const T* restrict A, __global const T* restrict B,
                  __global T* restrict C, const int M, const int N, const int K)
{
    const int lx = get_local_id(0), ly = get_local_id(1);
    const int col = get_group_id(0) * TS + lx;
    const int row = get_group_id(1) * TS + ly;
    __local T As[TS][TS];
    __local T Bs[TS][TS];
    T acc = 0;
    for (int t = 0; t < K; t += TS) {
        As[ly][lx] = (row < M && t + lx < K) ? A[(long)row * K + t + lx] : (T)0;
        Bs[ly][lx] = (t + ly < K && col < N) ? B[(long)(t + ly) * N + col] : (T)0;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TS; ++k)
            acc += As[ly][k] * Bs[k][lx];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (row < M && col < N)
        C[(long)row * N + col] = acc;
}
