"""Virtual subjects: many plausible "people" per class from the one template volume shipped
offline, made with TorchIO's medical-imaging augmentations.

The sample set has one volume per class, so a subject-grouped split is impossible without
more subjects, and downloading real cohorts is not allowed at run time. Each virtual subject
is the class's base volume (already on the reference grid) after a seeded chain of 3-D
transforms that model between-subject and between-scanner variation:

1. random affine (head size/shape and position: scaling, rotation, translation),
2. random elastic deformation (local anatomical variation; B-spline control grid),
3. random bias field (coil inhomogeneity; smooth multiplicative polynomial),
4. random gamma (contrast),
5. random Gaussian noise.

TorchIO (``torchio``) was chosen over hand-written transforms because it is the maintained
standard for 3-D medical augmentation (affine/elastic resampling through SimpleITK, physical
units in mm) and records the parameters it drew, which go into the provenance. MONAI would
do the same; TorchIO is the smaller dependency.

Intensities are divided by the volume's largest |value| first, so the noise standard
deviation and the bias-field coefficients mean the same for a uint8 T1 template, a [0, 1]
probability map and a signed t-map (slices are z-scored later anyway). Subject ``i`` of a
class draws from ``torch.manual_seed(subject_seed(seed, label, i))``: the result depends only
on (base volume, parameters, seed, label, i), not on process or order, so the work is spread
over worker processes and the dataset is byte-identical for any number of workers.
"""
from __future__ import annotations

import dataclasses
import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Callable, Iterator

import numpy as np

SUBJECT_FORMAT = "{label}-v{index:02d}"


@dataclasses.dataclass(frozen=True)
class VirtualSubjectConfig:
    """``dataset.virtual_subjects`` (hpc/schemas/config.schema.yaml has the defaults)."""

    per_class: int = 12
    seed: int = 0
    workers: int | None = None          # None: every CPU this process may use
    scales: float = 0.1                 # affine: scale factor drawn in 1 +- scales per axis
    degrees: float = 8.0                # affine: rotation +- degrees about each axis
    translation_mm: float = 4.0         # affine: shift +- mm per axis
    elastic_control_points: int = 7     # elastic: control grid points per axis
    elastic_max_displacement_mm: float = 6.0
    bias_coefficients: float = 0.3      # bias field: polynomial coefficients in +- this
    bias_order: int = 3
    log_gamma: float = 0.2              # gamma = exp(U(-log_gamma, log_gamma))
    noise_std: float = 0.02             # noise std drawn in [0, noise_std] of max |value|

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> "VirtualSubjectConfig":
        cfg = dict(cfg or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"dataset.virtual_subjects: unknown key(s) {unknown}")
        return cls(**cfg)

    def transform_params(self) -> dict[str, Any]:
        """The augmentation parameters alone (what the provenance records as the recipe)."""
        d = dataclasses.asdict(self)
        for key in ("per_class", "seed", "workers"):
            d.pop(key)
        return d


def subject_seed(seed: int, label: str, index: int) -> int:
    """Seed of virtual subject ``index`` of class ``label`` (stable across runs and machines)."""
    state = np.random.SeedSequence([seed, zlib.crc32(label.encode("utf-8")), index])
    return int(state.generate_state(1, dtype=np.uint64)[0] & ((1 << 63) - 1))


def subject_name(label: str, index: int) -> str:
    return SUBJECT_FORMAT.format(label=label, index=index + 1)


def augmentation(cfg: VirtualSubjectConfig):  # type: ignore[no-untyped-def]
    """The TorchIO pipeline for one virtual subject."""
    import torchio as tio

    return tio.Compose([
        tio.RandomAffine(scales=cfg.scales, degrees=cfg.degrees, translation=cfg.translation_mm,
                         default_pad_value=0.0, image_interpolation="linear"),
        tio.RandomElasticDeformation(num_control_points=cfg.elastic_control_points,
                                     max_displacement=cfg.elastic_max_displacement_mm),
        tio.RandomBiasField(coefficients=cfg.bias_coefficients, order=cfg.bias_order),
        tio.RandomGamma(log_gamma=cfg.log_gamma),
        tio.RandomNoise(std=(0.0, cfg.noise_std)),
    ])


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "tolist"):            # torch tensors
        return value.tolist()
    return value


_SKIP_ARGS = {"include", "exclude", "copy", "check_shape", "label_interpolation",
              "default_pad_label", "parse_input"}


def applied_parameters(history: list[Any]) -> list[dict[str, Any]]:
    """What TorchIO drew, per transform, JSON-ready. The elastic control-point grid (7x7x7x3
    displacements) is summarised by its largest displacement; the subject seed regenerates
    it exactly."""
    out = []
    for name, args in history:
        params: dict[str, Any] = {"transform": name}
        for key, value in dict(args).items():
            if key in _SKIP_ARGS:
                continue
            if key == "control_points":
                grid = np.asarray(value, dtype=np.float64)
                params["control_points_shape"] = list(grid.shape)
                params["max_displacement_drawn_mm"] = float(np.abs(grid).max()) if grid.size else 0.0
                continue
            if isinstance(value, dict) and set(value) == {"img"}:
                value = value["img"]
            params[key] = _jsonable(value)
        out.append(params)
    return out


def make_subject(base: np.ndarray, affine: np.ndarray, label: str, index: int,
                 cfg: VirtualSubjectConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """One virtual subject: (X, Y, Z) float32 volume and its provenance entry."""
    import torch
    import torchio as tio

    peak = float(np.abs(base).max())
    scaled = base / np.float32(peak) if peak > 0 else base
    seed = subject_seed(cfg.seed, label, index)
    torch.manual_seed(seed)
    image = tio.ScalarImage(tensor=torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32)[None]),
                            affine=affine)
    out = augmentation(cfg)(tio.Subject(img=image))
    volume = out["img"].data[0].numpy().astype(np.float32, copy=False)
    history = out.applied_transforms if hasattr(out, "applied_transforms") else out.history
    prov = {"seed": seed, "index": index, "intensity_scale": 1.0 / peak if peak > 0 else 1.0,
            "transforms": applied_parameters(list(history))}
    return volume, prov


# ---------------------------------------------------------------- worker pool

_BASES: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _init_worker(bases: dict[str, tuple[np.ndarray, np.ndarray]], single_thread: bool = True) -> None:
    """One thread per worker process (torch and SimpleITK): the processes are the parallelism."""
    if single_thread:
        import SimpleITK as sitk
        import torch

        torch.set_num_threads(1)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    _BASES.clear()
    _BASES.update(bases)


def _work(task: tuple[str, int, VirtualSubjectConfig, Callable[[np.ndarray], Any]]
          ) -> tuple[str, int, Any, dict[str, Any]]:
    label, index, cfg, reduce = task
    base, affine = _BASES[label]
    volume, prov = make_subject(base, affine, label, index, cfg)
    return label, index, reduce(volume), prov


def _in_process(bases: dict[str, tuple[np.ndarray, np.ndarray]], tasks: list[Any]
                ) -> Iterator[tuple[str, str, Any, dict[str, Any]]]:
    """The same single-threaded work as a worker, in this process, restoring its thread
    settings afterwards (one thread makes results bit-identical to the pool's)."""
    import SimpleITK as sitk
    import torch

    threads, itk_threads = torch.get_num_threads(), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    _init_worker(bases, single_thread=True)
    try:
        for task in tasks:
            label, index, reduced, prov = _work(task)
            yield label, subject_name(label, index), reduced, prov
    finally:
        torch.set_num_threads(threads)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(itk_threads)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def generate(bases: dict[str, tuple[np.ndarray, np.ndarray]], cfg: VirtualSubjectConfig,
             reduce: Callable[[np.ndarray], Any]) -> Iterator[tuple[str, str, Any, dict[str, Any]]]:
    """(label, subject name, reduce(volume), provenance) for ``cfg.per_class`` subjects of
    every class in ``bases`` ({label: (3-D base volume, affine)}), in class then index order.

    ``reduce`` runs in the worker (e.g. volume -> its prepared slices), so only small results
    travel back. It must be picklable (a module-level function or functools.partial of one).
    """
    tasks = [(label, i, cfg, reduce) for label in bases for i in range(cfg.per_class)]
    workers = min(cfg.workers or default_workers(), len(tasks))
    if workers <= 1:
        yield from _in_process(bases, tasks)
        return
    # spawn, not fork: the parent may already run OpenMP/ITK thread pools (e.g. under pytest)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_init_worker, initargs=(bases,)) as pool:
        for label, index, reduced, prov in pool.map(_work, tasks):
            yield label, subject_name(label, index), reduced, prov
