"""Training the study's AlexNet on the HDF5 slice dataset (``python -m hpc train``).

One job per module: ``data`` (lazy HDF5 dataset), ``transforms`` (augmentation without
torchvision), ``loop`` (epochs, devices), ``checkpoint`` (atomic, resumable state),
``signals`` (preemption), ``lr_find`` (LR range test), ``metrics`` (pure metric functions),
``ddp`` (torch.distributed set-up from MPI/SLURM environments), ``cli`` (the commands).
"""
