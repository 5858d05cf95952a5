"""HPC experiment suite for pooling, matmul and AlexNet on MRI data."""
__version__ = "0.1.0"
