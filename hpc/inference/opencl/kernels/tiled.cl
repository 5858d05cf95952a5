/* "tiled" style, this suite's own NDRange design for devices with many lanes (CPU SIMD under
   PoCL, GPUs): one work-item per output pixel (dimension 0 runs along the output row, so
   neighbouring work-items read neighbouring inputs and vectorise), each computing FB = 8
   filters at once in a float8 accumulator so that every input value loaded is used 8 times.
   Weights are re-blocked by the host to (ceil(Cout/8), Cin, KH, KW, 8), zero-padded, so
   the 8 weights of one tap are one aligned vload8; biases are padded to a multiple of 8.
   Accumulation order per output is the plain channel-then-tap order. */
#define FB 8

inline void store_block(float8 acc, const int relu, const int f0, const int Cout,
                        __global float *dst, const int plane_stride)
{
    float v[FB];
    vstore8(acc, 0, v);
    #pragma unroll
    for (int j = 0; j < FB; j++)
        if (f0 + j < Cout) dst[j * plane_stride] = APPLY_RELU(v[j], relu);
}

/* global (Wo, Ho, N * ceil(Cout/8)) */
__kernel void conv2d(
    const int N, const int Cin, const int H, const int W, const int Cout,
    const int KH, const int KW, const int SH, const int SW, const int PH, const int PW,
    const int Ho, const int Wo, const int ctot, const int coff, const int relu,
    __global const float *restrict in, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    const int ox = get_global_id(0), oy = get_global_id(1), nb = get_global_id(2);
    const int nfb = (Cout + FB - 1) / FB;
    const int n = nb / nfb, fb = nb % nfb;
    float8 acc = vload8(fb, b);
    __global const float *wb = w + fb * Cin * KH * KW * FB;
    for (int c = 0; c < Cin; c++) {
        __global const float *plane = in + (n * Cin + c) * H * W;
        for (int ky = 0; ky < KH; ky++) {
            int iy = oy * SH - PH + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < KW; kx++) {
                int ix = ox * SW - PW + kx;
                if (ix >= 0 && ix < W)
                    acc += plane[iy * W + ix] * vload8((c * KH + ky) * KW + kx, wb);
            }
        }
    }
    store_block(acc, relu, fb * FB, Cout,
                out + ((n * ctot + coff + fb * FB) * Ho + oy) * Wo + ox, Ho * Wo);
}

/* global (Wo, Ho, N * ceil(Cout/8)) */
__kernel void conv2d_3x3(
    const int N, const int Cin, const int H, const int W, const int Cout,
    const int SH, const int SW, const int PH, const int PW,
    const int Ho, const int Wo, const int ctot, const int coff, const int relu,
    __global const float *restrict in, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    const int ox = get_global_id(0), oy = get_global_id(1), nb = get_global_id(2);
    const int nfb = (Cout + FB - 1) / FB;
    const int n = nb / nfb, fb = nb % nfb;
    float8 acc = vload8(fb, b);
    __global const float *wb = w + fb * Cin * 9 * FB;
    const int y0 = oy * SH - PH, x0 = ox * SW - PW;
    for (int c = 0; c < Cin; c++) {
        __global const float *plane = in + (n * Cin + c) * H * W;
        #pragma unroll
        for (int ky = 0; ky < 3; ky++) {
            #pragma unroll
            for (int kx = 0; kx < 3; kx++) {
                int iy = y0 + ky, ix = x0 + kx;
                float v = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? plane[iy * W + ix] : 0.0f;
                acc += v * vload8(c * 9 + ky * 3 + kx, wb);
            }
        }
    }
    store_block(acc, relu, fb * FB, Cout,
                out + ((n * ctot + coff + fb * FB) * Ho + oy) * Wo + ox, Ho * Wo);
}

/* global (H*W, N * ceil(Cout/8)) */
__kernel void conv2d_1x1(
    const int N, const int Cin, const int HW, const int Cout,
    const int ctot, const int coff, const int relu,
    __global const float *restrict in, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    const int p = get_global_id(0), nb = get_global_id(1);
    const int nfb = (Cout + FB - 1) / FB;
    const int n = nb / nfb, fb = nb % nfb;
    float8 acc = vload8(fb, b);
    __global const float *wb = w + fb * Cin * FB;
    __global const float *src = in + n * Cin * HW + p;
    for (int c = 0; c < Cin; c++)
        acc += src[c * HW] * vload8(c, wb);
    store_block(acc, relu, fb * FB, Cout, out + (n * ctot + coff + fb * FB) * HW + p, HW);
}

/* global (ceil(Out/8), N); weights re-blocked like a 1x1 convolution: (ceil(Out/8), In, 8). */
__kernel void linear(
    const int N, const int In, const int Out, const int relu,
    __global const float *restrict x, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    const int ob = get_global_id(0), n = get_global_id(1);
    float8 acc = vload8(ob, b);
    __global const float *wb = w + ob * In * FB;
    __global const float *xn = x + n * In;
    for (int i = 0; i < In; i++) acc += xn[i] * vload8(i, wb);
    store_block(acc, relu, ob * FB, Out, out + n * Out + ob * FB, 1);
}

/* global (Wo, Ho, N*C): one output element per work-item. */
__kernel void maxpool2d(
    const int NC, const int H, const int W, const int KH, const int KW,
    const int SH, const int SW, const int PH, const int PW, const int Ho, const int Wo,
    const int relu, __global const float *restrict in, __global float *restrict out)
{
    const int ox = get_global_id(0), oy = get_global_id(1), p = get_global_id(2);
    out[(p * Ho + oy) * Wo + ox] = APPLY_RELU(pool_max(in + p * H * W, H, W, oy * SH - PH, ox * SW - PW, KH, KW), relu);
}

__kernel void avgpool2d(
    const int NC, const int H, const int W, const int KH, const int KW,
    const int SH, const int SW, const int PH, const int PW, const int Ho, const int Wo,
    const int relu, __global const float *restrict in, __global float *restrict out)
{
    const int ox = get_global_id(0), oy = get_global_id(1), p = get_global_id(2);
    out[(p * Ho + oy) * Wo + ox] = APPLY_RELU(pool_avg(in + p * H * W, H, W, PH, PW, oy * SH - PH, ox * SW - PW,
                                                       KH, KW), relu);
}

/* global (N*C); four interleaved partial sums per plane. */
__kernel void avgpool_global(
    const int NC, const int HW, const int relu,
    __global const float *restrict in, __global float *restrict out)
{
    const int p = get_global_id(0);
    __global const float *plane = in + p * HW;
    float4 s4 = (float4)(0.0f);
    int i = 0;
    for (; i + 4 <= HW; i += 4) s4 += vload4(0, plane + i);
    float s = (s4.s0 + s4.s1) + (s4.s2 + s4.s3);
    for (; i < HW; i++) s += plane[i];
    out[p] = APPLY_RELU(s / (float)HW, relu);
}

/* global (H*W, N*C): one element per work-item. */
__kernel void lrn(
    const int N, const int C, const int HW, const int size, const int relu,
    const float alpha, const float beta, const float k,
    __global const float *restrict in, __global float *restrict out)
{
    const int p = get_global_id(0), nc = get_global_id(1);
    out[nc * HW + p] = APPLY_RELU(lrn_at(in, nc / C, C, nc % C, HW, p, size, alpha, beta, k), relu);
}
