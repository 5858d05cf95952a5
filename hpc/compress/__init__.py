"""Compression stage: make a trained network smaller and faster, with held-out evaluation.

One module per job:

* ``evaluation``  - the data (one HDF5 split as tensors), a small trainer, accuracy with a
  Wilson interval; shared by every method so they are all judged the same way;
* ``kmeans``      - per-layer scalar k-means weight clustering (scikit-learn ``KMeans``) and
  the theoretical compression ratio;
* ``packed``      - the clustered model as a file of bit-packed indices plus codebooks;
* ``finetune``    - Deep Compression's shared-centroid fine-tuning;
* ``clustered_conv`` / ``conv_bench`` - convolution directly on clustered weights (numba)
  and its benchmark against im2col + BLAS GEMM and torch;
* ``pruning`` / ``netadapt`` - channel slicing of the sequential AlexNet and the NetAdapt loop;
* ``binary``      - binarised AlexNet/SqueezeNet (sign weights, STE, 8-bit activations);
* ``experiment``  - which methods and base options each architecture supports (checked on load);
* ``runner`` / ``cli`` - one experiment run -> records (``python -m hpc compress``).
"""
