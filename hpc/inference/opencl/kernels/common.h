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
