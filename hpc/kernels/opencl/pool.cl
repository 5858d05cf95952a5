/* Max / average pooling in two styles, templated per element type by the host, which
 * prepends #defines (see backend_opencl.py):
 *   T            storage type of x and out (float, double, half, char, uchar, short, int, long)
 *   CT           compute type (float for half: half arithmetic needs cl_khr_fp16, which most
 *                CPUs/FPGAs lack, so half is read with vload_half and written with vstore_half_rte)
 *   ACC          accumulator type for average pooling (float or double)
 *   LOAD(p, i)   read element i of p as CT;  STORE(p, i, v) write v (CT) to element i
 *   LOWEST       value of the implicit padding for max (-INFINITY, or the integer minimum)
 *   IS_NAN(v)    isnan(v) for floats, 0 for integers
 * Semantics are torch's (see hpc/kernels/api.py): a window containing NaN gives NaN,
 * padding is -inf for max, avg divisor per count_include_pad / divisor_override (0 = none).
 */

#define NANMAX(m, v) ((((v) > (m)) || IS_NAN(v)) && !IS_NAN(m) ? (v) : (m))

/* Window bounds of output (oh, ow), clipped to the input; also the torch divisor. */
#define WINDOW(oh, ow)                                                     \
    int r0 = (oh) * sh - ph, c0 = (ow) * sw - pw;                          \
    int r1p = min(r0 + kh, H + ph), c1p = min(c0 + kw, W + pw);            \
    int pool_size = (r1p - r0) * (c1p - c0);                               \
    int r1 = min(r0 + kh, H), c1 = min(c0 + kw, W);                        \
    r0 = max(r0, 0); c0 = max(c0, 0);

/* ---------------- NDRange style: one work-item per output element ---------------- */

__kernel void max_pool_ndrange(__global const T* restrict x, __global T* restrict out,
                               const int H, const int W, const int OH, const int OW,
                               const int kh, const int kw, const int sh, const int sw,
                               const int ph, const int pw)
{
    const int ow = get_global_id(0), oh = get_global_id(1);
    const long p = get_global_id(2);
    if (ow >= OW || oh >= OH) return;
    WINDOW(oh, ow)
    __global const T* xp = x + p * H * W;
    CT m = LOWEST;
    for (int r = r0; r < r1; ++r)
        for (int c = c0; c < c1; ++c) {
            CT v = LOAD(xp, r * W + c);
            m = NANMAX(m, v);
        }
    STORE(out, (p * OH + oh) * OW + ow, m);
}

__kernel void avg_pool_ndrange(__global const T* restrict x, __global T* restrict out,
                               const int H, const int W, const int OH, const int OW,
                               const int kh, const int kw, const int sh, const int sw,
                               const int ph, const int pw,
                               const int count_include_pad, const int divisor_override)
{
    const int ow = get_global_id(0), oh = get_global_id(1);
    const long p = get_global_id(2);
    if (ow >= OW || oh >= OH) return;
    WINDOW(oh, ow)
    __global const T* xp = x + p * H * W;
    ACC s = 0;
    for (int r = r0; r < r1; ++r)
        for (int c = c0; c < c1; ++c)
            s += (ACC)LOAD(xp, r * W + c);
    int divisor = divisor_override != 0 ? divisor_override
                : (count_include_pad ? pool_size : (r1 - r0) * (c1 - c0));
    STORE(out, (p * OH + oh) * OW + ow, (CT)(s / (ACC)divisor));
}

/* ---------------- single-task style: one work-item, pipelined nested loops ----------------
 * Written the way an FPGA high-level-synthesis compiler wants it: no work-item ids, simple
 * counted loops (the inner window loops have compile-time-unknown but small trip counts,
 * the output loop is the pipelined one, initiation interval 1 on an FPGA). On CPUs/GPUs it
 * runs on one core/thread: it is here to compare the two programming models, not for speed.
 */
#if defined(INTELFPGA_CL) || defined(ALTERA_CL)
#define SINGLE_TASK __attribute__((max_global_work_dim(0)))
#else
#define SINGLE_TASK
#endif

SINGLE_TASK
__kernel void max_pool_single(__global const T* restrict x, __global T* restrict out,
                              const int planes, const int H, const int W, const int OH, const int OW,
                              const int kh, const int kw, const int sh, const int sw,
                              const int ph, const int pw)
{
    for (long p = 0; p < planes; ++p) {
        __global const T* xp = x + p * H * W;
        for (int oh = 0; oh < OH; ++oh) {
            for (int ow = 0; ow < OW; ++ow) {
                WINDOW(oh, ow)
                CT m = LOWEST;
                for (int r = r0; r < r1; ++r)
                    for (int c = c0; c < c1; ++c) {
                        CT v = LOAD(xp, r * W + c);
                        m = NANMAX(m, v);
                    }
                STORE(out, (p * OH + oh) * OW + ow, m);
            }
        }
    }
}

SINGLE_TASK
__kernel void avg_pool_single(__global const T* restrict x, __global T* restrict out,
                              const int planes, const int H, const int W, const int OH, const int OW,
                              const int kh, const int kw, const int sh, const int sw,
                              const int ph, const int pw,
                              const int count_include_pad, const int divisor_override)
{
    for (long p = 0; p < planes; ++p) {
        __global const T* xp = x + p * H * W;
        for (int oh = 0; oh < OH; ++oh) {
            for (int ow = 0; ow < OW; ++ow) {
                WINDOW(oh, ow)
                ACC s = 0;
                for (int r = r0; r < r1; ++r)
                    for (int c = c0; c < c1; ++c)
                        s += (ACC)LOAD(xp, r * W + c);
                int divisor = divisor_override != 0 ? divisor_override
                            : (count_include_pad ? pool_size : (r1 - r0) * (c1 - c0));
                STORE(out, (p * OH + oh) * OW + ow, (CT)(s / (ACC)divisor));
            }
        }
    }
}
