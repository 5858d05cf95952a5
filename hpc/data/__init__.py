"""Dataset stage: NIfTI volumes -> normalised 2-D slices -> one HDF5 file (``hpc-slices`` format).

Modules, one job each: ``sources`` (which files, which class), ``volumes`` (load, validate,
reorient, resample), ``slices`` (pure slice maths), ``split`` (deterministic splits),
``writer``/``reader`` (the HDF5 format), ``png`` (optional export), ``build`` (orchestration),
``cli`` (``python -m hpc data``).
"""
