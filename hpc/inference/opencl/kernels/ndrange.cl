/* "ndrange" style, the FPGA study's reference design: one work-item computes one output
   row of one filter (global size (N*Cout, Ho) for convolutions), one work-item per channel
   plane for pooling, one per output for the classifier. Plain sequential accumulation in
   channel, then tap order. Unlike the study's conv1x1 (float4 weights, Cin a multiple of
   4) these take any channel count. */

__kernel void conv2d(
    const int N, const int Cin, const int H, const int W, const int Cout,
    const int KH, const int KW, const int SH, const int SW, const int PH, const int PW,
    const int Ho, const int Wo, const int ctot, const int coff, const int relu,
    __global const float *restrict in, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    const int nf = get_global_id(0), oy = get_global_id(1);
    const int n = nf / Cout, f = nf % Cout;
    __global float *row = out + ((n * ctot + coff + f) * Ho + oy) * Wo;
    for (int ox = 0; ox < Wo; ox++) {
        float acc = b[f];
        for (int c = 0; c < Cin; c++)
        for (int ky = 0; ky < KH; ky++) {
            int iy = oy * SH - PH + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < KW; kx++) {
                int ix = ox * SW - PW + kx;
                if (ix >= 0 && ix < W)
                    acc += in[((n * Cin + c) * H + iy) * W + ix] * w[((f * Cin + c) * KH + ky) * KW + kx];
            }
        }
        row[ox] = APPLY_RELU(acc, relu);
    }
}

__kernel void conv2d_3x3(
    const int N, const int Cin, const int H, const int W, const int Cout,
    const int SH, const int SW, const int PH, const int PW,
    const int Ho, const int Wo, const int ctot, const int coff, const int relu,
    __global const float *restrict in, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    const int nf = get_global_id(0), oy = get_global_id(1);
    const int n = nf / Cout, f = nf % Cout;
    __global float *row = out + ((n * ctot + coff + f) * Ho + oy) * Wo;
    for (int ox = 0; ox < Wo; ox++) {
        float acc = b[f];
        for (int c = 0; c < Cin; c++) {
            __global const float *plane = in + (n * Cin + c) * H * W;
            __global const float *k = w + (f * Cin + c) * 9;
            #pragma unroll
            for (int ky = 0; ky < 3; ky++) {
                int iy = oy * SH - PH + ky;
                #pragma unroll
                for (int kx = 0; kx < 3; kx++) {
                    int ix = ox * SW - PW + kx;
                    if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                        acc += plane[iy * W + ix] * k[ky * 3 + kx];
                }
            }
        }
        row[ox] = APPLY_RELU(acc, relu);
    }
}

/* 1x1 stride 1 no padding; global (N*Cout, H), one row of W pixels per work-item. */
__kernel void conv2d_1x1(
    const int N, const int Cin, const int H, const int W, const int Cout,
    const int ctot, const int coff, const int relu,
    __global const float *restrict in, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    const int nf = get_global_id(0), y = get_global_id(1);
    const int n = nf / Cout, f = nf % Cout;
    const int HW = H * W;
    __global float *row = out + (n * ctot + coff + f) * HW + y * W;
    for (int x = 0; x < W; x++) {
        float acc = b[f];
        for (int c = 0; c < Cin; c++)
            acc += in[(n * Cin + c) * HW + y * W + x] * w[f * Cin + c];
        row[x] = APPLY_RELU(acc, relu);
    }
}

/* global (N*Out): one output per work-item. */
__kernel void linear(
    const int N, const int In, const int Out, const int relu,
    __global const float *restrict x, __global const float *restrict w,
    __global const float *restrict b, __global float *restrict out)
{
    const int no = get_global_id(0);
    const int n = no / Out, o = no % Out;
    float acc = b[o];
    for (int i = 0; i < In; i++) acc += x[n * In + i] * w[o * In + i];
    out[no] = APPLY_RELU(acc, relu);
}

/* global (N*C): one channel plane per work-item. */
__kernel void maxpool2d(
    const int NC, const int H, const int W, const int KH, const int KW,
    const int SH, const int SW, const int PH, const int PW, const int Ho, const int Wo,
    const int relu, __global const float *restrict in, __global float *restrict out)
{
    const int p = get_global_id(0);
    for (int oy = 0; oy < Ho; oy++)
    for (int ox = 0; ox < Wo; ox++)
        out[(p * Ho + oy) * Wo + ox] = APPLY_RELU(pool_max(in + p * H * W, H, W, oy * SH - PH, ox * SW - PW, KH, KW), relu);
}

__kernel void avgpool2d(
    const int NC, const int H, const int W, const int KH, const int KW,
    const int SH, const int SW, const int PH, const int PW, const int Ho, const int Wo,
    const int relu, __global const float *restrict in, __global float *restrict out)
{
    const int p = get_global_id(0);
    for (int oy = 0; oy < Ho; oy++)
    for (int ox = 0; ox < Wo; ox++)
        out[(p * Ho + oy) * Wo + ox] = APPLY_RELU(pool_avg(in + p * H * W, H, W, PH, PW, oy * SH - PH, ox * SW - PW,
                                                           KH, KW), relu);
}

/* global (N*C): one class score per work-item (the study's avgpool2d, global size 1000). */
__kernel void avgpool_global(
    const int NC, const int HW, const int relu,
    __global const float *restrict in, __global float *restrict out)
{
    const int p = get_global_id(0);
    float s = 0.0f;
    for (int i = 0; i < HW; i++) s += in[p * HW + i];
    out[p] = APPLY_RELU(s / (float)HW, relu);
}

/* global (N*C, H): one row of one channel per work-item. */
__kernel void lrn(
    const int N, const int C, const int HW, const int size, const int relu,
    const float alpha, const float beta, const float k,
    __global const float *restrict in, __global float *restrict out)
{
    const int nc = get_global_id(0), y = get_global_id(1), H = get_global_size(1);
    const int n = nc / C, c = nc % C, W = HW / H;
    for (int x = 0; x < W; x++)
        out[nc * HW + y * W + x] = APPLY_RELU(lrn_at(in, n, C, c, HW, y * W + x, size, alpha, beta, k), relu);
}
