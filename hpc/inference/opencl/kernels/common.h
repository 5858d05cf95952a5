/* Shared by the three kernel styles (prepended by the host before the style's source).

   Layouts: activations NCHW float32; convolution weights (Cout, Cin, KH, KW) as torch stores
   them (the "tiled" style takes them re-blocked, see tiled.cl); a convolution writes output
   channel f at channel coff + f of an output buffer holding ctot channels, so the two expand
   convolutions of a fire module fill one concatenated buffer. relu != 0 applies ReLU to the
   value written (fused: conv + ReLU, or pool + ReLU which equals ReLU + pool).

   On Intel's FPGA compiler (aoc defines INTELFPGA_CL) single-task kernels carry
   max_global_work_dim(0), which tells it to build one pipelined work-item; other compilers
   get no attribute. */
#if defined(INTELFPGA_CL) || defined(ALTERA_CL)
#define SINGLE_TASK __attribute__((max_global_work_dim(0)))
#else
#define SINGLE_TASK
#endif

#define APPLY_RELU(v, relu) ((relu) ? fmax((v), 0.0f) : (v))

/* Pooling and LRN arithmetic, the same in every style (the styles differ only in how the
   outputs are spread over work-items). */

/* Max over the pooling window at (y0, x0) of one channel plane; positions outside the input
   are skipped, so padding and ceil-mode overhang never win (as in torch). */
inline float pool_max(__global const float *plane, const int H, const int W,
                      const int y0, const int x0, const int KH, const int KW)
{
    float m = -INFINITY;
    for (int ky = 0; ky < KH; ky++)
    for (int kx = 0; kx < KW; kx++) {
        const int iy = y0 + ky, ix = x0 + kx;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W)
            m = fmax(m, plane[iy * W + ix]);
    }
    return m;
}

/* Mean over the pooling window at (y0, x0); the divisor follows torch's count_include_pad=True
   rule: the window clipped to the padded input (so ceil-mode overhang is not counted). */
inline float pool_avg(__global const float *plane, const int H, const int W, const int PH, const int PW,
                      const int y0, const int x0, const int KH, const int KW)
{
    const int y1 = min(y0 + KH, H + PH), x1 = min(x0 + KW, W + PW);
    float s = 0.0f;
    for (int iy = max(y0, 0); iy < min(y1, H); iy++)
    for (int ix = max(x0, 0); ix < min(x1, W); ix++)
        s += plane[iy * W + ix];
    return s / (float)((y1 - y0) * (x1 - x0));
}

/* Local response normalisation across channels (AlexNet, classic layout) of element p of
   channel c of image n, torch's formula: x / (k + alpha / size * sum of x^2 over channels
   [c - size/2, c + (size-1)/2])^beta. */
inline float lrn_at(__global const float *in, const int n, const int C, const int c, const int HW,
                    const int p, const int size, const float alpha, const float beta, const float k)
{
    float s = 0.0f;
    for (int j = max(c - size / 2, 0); j <= min(c + (size - 1) / 2, C - 1); j++) {
        const float v = in[(n * C + j) * HW + p];
        s += v * v;
    }
    return in[(n * C + c) * HW + p] / pow(k + alpha / (float)size * s, beta);
}
