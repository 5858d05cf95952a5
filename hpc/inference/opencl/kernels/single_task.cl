/* "single-task" style: each kernel is one work-item (launched with global size 1) whose
   loop nest an FPGA compiler turns into one deep pipeline. Floating-point accumulation uses
   the shift-register idiom: the running sum is spread over SR interleaved partial sums, so
   the loop-carried dependency spans SR iterations and the pipeline can accept one iteration
   per clock (II=1) although a float add takes several cycles; the partials are added at the
   end. SR = 16 is the study's choice for the Cyclone V float adder. This changes the order
   of summation compared with a plain loop (see the golden tests' tolerance note). */
#ifndef SR
#define SR 16
#endif

inline float sr_total(const float *sr) {
    float t = 0.0f;
    #pragma unroll
    for (int i = 0; i < SR; i++) t += sr[i];
    return t;
}

#define SR_CLEAR(sr) { _Pragma("unroll") for (int i_ = 0; i_ <= SR; i_++) (sr)[i_] = 0.0f; }
#define SR_PUSH(sr, v) { (sr)[SR] = (sr)[0] + (v); \
    _Pragma("unroll") for (int i_ = 0; i_ < SR; i_++) (sr)[i_] = (sr)[i_ + 1]; }

SINGLE_TASK __kernel void conv2d(
    const int N, const int Cin, const int H, const int W, const int Cout,
    const int KH, const int KW, const int SH, const int SW, const int PH, const int PW,
    const int Ho, const int Wo, const int ctot, const int coff, const int relu,
    __global const float *restrict in, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    for (int n = 0; n < N; n++)
    for (int f = 0; f < Cout; f++)
    for (int oy = 0; oy < Ho; oy++)
    for (int ox = 0; ox < Wo; ox++) {
        float sr[SR + 1];
        SR_CLEAR(sr);
        for (int c = 0; c < Cin; c++)
        for (int ky = 0; ky < KH; ky++)
        for (int kx = 0; kx < KW; kx++) {
            int iy = oy * SH - PH + ky, ix = ox * SW - PW + kx;
            float v = 0.0f;
            if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                v = in[((n * Cin + c) * H + iy) * W + ix] * w[((f * Cin + c) * KH + ky) * KW + kx];
            SR_PUSH(sr, v);
        }
        float acc = b[f] + sr_total(sr);
        out[((n * ctot + coff + f) * Ho + oy) * Wo + ox] = APPLY_RELU(acc, relu);
    }
}

/* 3x3 specialisation: the 9 taps of one input channel are fully unrolled into one sum,
   which enters the shift register once per channel. */
SINGLE_TASK __kernel void conv2d_3x3(
    const int N, const int Cin, const int H, const int W, const int Cout,
    const int SH, const int SW, const int PH, const int PW,
    const int Ho, const int Wo, const int ctot, const int coff, const int relu,
    __global const float *restrict in, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    for (int n = 0; n < N; n++)
    for (int f = 0; f < Cout; f++)
    for (int oy = 0; oy < Ho; oy++)
    for (int ox = 0; ox < Wo; ox++) {
        float sr[SR + 1];
        SR_CLEAR(sr);
        for (int c = 0; c < Cin; c++) {
            const int base_in = (n * Cin + c) * H * W;
            const int base_w = (f * Cin + c) * 9;
            float taps = 0.0f;
            #pragma unroll
            for (int ky = 0; ky < 3; ky++) {
                #pragma unroll
                for (int kx = 0; kx < 3; kx++) {
                    int iy = oy * SH - PH + ky, ix = ox * SW - PW + kx;
                    if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                        taps += in[base_in + iy * W + ix] * w[base_w + ky * 3 + kx];
                }
            }
            SR_PUSH(sr, taps);
        }
        float acc = b[f] + sr_total(sr);
        out[((n * ctot + coff + f) * Ho + oy) * Wo + ox] = APPLY_RELU(acc, relu);
    }
}

/* 1x1, stride 1, no padding: a pixel-wise matrix product over channels (the study's V6). */
SINGLE_TASK __kernel void conv2d_1x1(
    const int N, const int Cin, const int HW, const int Cout,
    const int ctot, const int coff, const int relu,
    __global const float *restrict in, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    for (int n = 0; n < N; n++)
    for (int f = 0; f < Cout; f++)
    for (int p = 0; p < HW; p++) {
        float sr[SR + 1];
        SR_CLEAR(sr);
        for (int c = 0; c < Cin; c++)
            SR_PUSH(sr, in[(n * Cin + c) * HW + p] * w[f * Cin + c]);
        float acc = b[f] + sr_total(sr);
        out[(n * ctot + coff + f) * HW + p] = APPLY_RELU(acc, relu);
    }
}

/* Fully connected classifier: out[n, o] = b[o] + sum_i w[o, i] x[n, i]. */
SINGLE_TASK __kernel void linear(
    const int N, const int In, const int Out, const int relu,
    __global const float *restrict x, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    for (int n = 0; n < N; n++)
    for (int o = 0; o < Out; o++) {
        float sr[SR + 1];
        SR_CLEAR(sr);
        for (int i = 0; i < In; i++)
            SR_PUSH(sr, x[n * In + i] * w[o * In + i]);
        float acc = b[o] + sr_total(sr);
        out[n * Out + o] = APPLY_RELU(acc, relu);
    }
}

/* Max pooling, any window/stride/padding (window arithmetic: pool_max in common.h). */
SINGLE_TASK __kernel void maxpool2d(
    const int NC, const int H, const int W, const int KH, const int KW,
    const int SH, const int SW, const int PH, const int PW, const int Ho, const int Wo,
    const int relu, __global const float *restrict in, __global float *restrict out)
{
    for (int p = 0; p < NC; p++)
    for (int oy = 0; oy < Ho; oy++)
    for (int ox = 0; ox < Wo; ox++)
        out[(p * Ho + oy) * Wo + ox] = APPLY_RELU(pool_max(in + p * H * W, H, W, oy * SH - PH, ox * SW - PW, KH, KW), relu);
}

/* Average pooling with a window (divisor rule: pool_avg in common.h). */
SINGLE_TASK __kernel void avgpool2d(
    const int NC, const int H, const int W, const int KH, const int KW,
    const int SH, const int SW, const int PH, const int PW, const int Ho, const int Wo,
    const int relu, __global const float *restrict in, __global float *restrict out)
{
    for (int p = 0; p < NC; p++)
    for (int oy = 0; oy < Ho; oy++)
    for (int ox = 0; ox < Wo; ox++)
        out[(p * Ho + oy) * Wo + ox] = APPLY_RELU(pool_avg(in + p * H * W, H, W, PH, PW, oy * SH - PH, ox * SW - PW,
                                                           KH, KW), relu);
}

/* Global average pooling (the study's avgpool2d: 13x13x1000 -> 1000 scores); a plain
   accumulation, as the study kept it (II ~16, no shift register: it is a tiny loop). */
SINGLE_TASK __kernel void avgpool_global(
    const int NC, const int HW, const int relu,
    __global const float *restrict in, __global float *restrict out)
{
    for (int p = 0; p < NC; p++) {
        float s = 0.0f;
        for (int i = 0; i < HW; i++) s += in[p * HW + i];
        out[p] = APPLY_RELU(s / (float)HW, relu);
    }
}

/* Local response normalisation across channels (lrn_at in common.h). */
SINGLE_TASK __kernel void lrn(
    const int N, const int C, const int HW, const int size, const int relu,
    const float alpha, const float beta, const float k,
    __global const float *restrict in, __global float *restrict out)
{
    for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
    for (int p = 0; p < HW; p++)
        out[(n * C + c) * HW + p] = APPLY_RELU(lrn_at(in, n, C, c, HW, p, size, alpha, beta, k), relu);
}
