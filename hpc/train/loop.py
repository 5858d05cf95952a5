"""The training run: set-up, epochs, evaluation, checkpoints, records.

One function, ``run_training(settings)``, does a whole (possibly resumed, possibly
distributed) run and returns the process exit code: 0 when finished, ``EXIT_PREEMPTED``
when SIGTERM/SIGUSR1 stopped it after a checkpoint.

Reproducibility design (what makes kill-and-resume bit-identical on CPU):

* the order of training samples in epoch e is a pure function of (seed, e)
  (``DistributedSampler.set_epoch``), so a checkpoint needs only (epoch, step) to rebuild it;
* the augmentation of step s of epoch e draws from a generator seeded by (seed, e, s, rank);
* dropout draws from the global torch RNG, whose state is saved in every checkpoint;
* the epoch's partial sums (loss, correct, seen, train time) are saved with the position.

GPU path: bf16 autocast (``amp``), channels_last memory format, optional ``torch.compile``,
pinned host memory and non-blocking host->device copies. CPU: ``threads`` sets
``torch.set_num_threads``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from hpc.models.alexnet import build_model
from hpc.records import Record, new_record, write_records
from hpc.train import ddp
from hpc.train.checkpoint import (CheckpointError, checkpoint_mismatch, config_hash, load_checkpoint,
                                  model_signature, move_aside, rng_state, save_checkpoint,
                                  set_rng_state)
from hpc.train.data import SliceDataset, channel_stats, check_training_classes, validate_file
from hpc.train.metrics import (accuracy_from_cm, confusion_matrix, precision_recall,
                               subject_accuracy, wilson_interval, write_confusion_csv,
                               write_confusion_png)
from hpc.train.signals import EXIT_PREEMPTED, PreemptionHandler
from hpc.train.transforms import Augment, step_generator


#: Steps between two checks of the preemption flag (a collective; see the training loop).
STOP_CHECK_STEPS = 10


class TrainingError(ValueError):
    """A training setting is unusable (device, batch size, output directory...)."""


@dataclasses.dataclass
class Settings:
    """Everything a run needs. Defaults mirror hpc/schemas/experiment.schema.yaml."""

    data: str
    out_dir: str
    epochs: int = 50
    batch_size: int | str = 256  # or "full": the whole (per-rank) training split in one step
    eval_batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    scheduler: str = "none"
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    deterministic: bool = False
    workers: int = 0
    preload: bool = True
    arch: str = "alexnet-small"
    width: float = 1.0
    hidden: int = 4096
    rotation_degrees: float = 5.0
    hflip: bool = True
    crop_padding: int = 2
    eval_test_each_epoch: bool = False
    ddp: bool = False
    baseline_images_per_s: float | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    name: str = "train"
    experiment: str | None = None
    stop_after_epochs: int | None = None  # for tests and time-boxed jobs: stop (exit 0) early


# ---------------------------------------------------------------- device and determinism

def resolve_device(name: str) -> torch.device:
    """cpu | cuda | cuda:N | auto -> torch.device; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {name}: no CUDA GPU is available here "
                                f"(torch {torch.__version__}, cuda build: {torch.version.cuda}); "
                                "use --device cpu or auto")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TrainingError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) present")
        return dev
    raise TrainingError(f"--device {name!r}: expected cpu, cuda, cuda:N or auto")


def _record_device(device: torch.device) -> dict[str, Any]:
    """The device the training ran on, as hpc.schema.Device (asked of torch, not parsed)."""
    from hpc.kernels import device_record
    if device.type == "cuda":
        return device_record.torch_cuda(device.index).model_dump()
    return device_record.cpu().model_dump()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def set_determinism(enabled: bool, device: torch.device) -> None:
    """Deterministic kernels everywhere (slower on GPU); CPU training is already
    reproducible for a fixed thread count, this makes any nondeterministic op an error."""
    if enabled:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


# ---------------------------------------------------------------- data and model

@dataclasses.dataclass
class DataBundle:
    meta: dict[str, Any]
    train: SliceDataset
    val: SliceDataset
    test: SliceDataset
    mean: list[float]
    std: list[float]

    @property
    def num_classes(self) -> int:
        return len(self.meta["class_names"])

    def fingerprint(self) -> str:
        """Identity of the data (labels, split, classes, shape), not of its path."""
        h = hashlib.sha256()
        h.update(self.meta["labels"].tobytes())
        h.update(self.meta["split"].astype(np.uint8).tobytes())
        h.update("|".join(self.meta["class_names"]).encode())
        h.update(repr(self.meta["image_shape"]).encode())
        return h.hexdigest()[:16]


def prepare_data(s: Settings, world_size: int = 1) -> DataBundle:
    meta = validate_file(s.data)
    check_training_classes(meta)
    train = SliceDataset(s.data, "train", preload=s.preload, meta=meta)
    s.batch_size = resolve_batch_size(s.batch_size, len(train), world_size, s.data)
    mean, std = channel_stats(train)
    return DataBundle(meta, train, SliceDataset(s.data, "val", s.preload, meta),
                      SliceDataset(s.data, "test", s.preload, meta), mean, std)


def resolve_batch_size(batch_size: int | str, n_train: int, world_size: int, source: str) -> int:
    """An integer batch size, checked against the per-rank training split; ``"full"`` means
    the whole per-rank split (the study's batch 256 on 245 training slices was exactly that:
    one full-batch step per epoch). An explicit size larger than the split is an error."""
    per_rank = math.ceil(n_train / world_size)
    if batch_size == "full":
        return per_rank
    if isinstance(batch_size, str):
        try:
            batch_size = int(batch_size)
        except ValueError:
            raise TrainingError(f"--batch-size {batch_size!r}: expected an integer or 'full'") from None
    if batch_size < 1:
        raise TrainingError(f"--batch-size {batch_size}: must be >= 1")
    if batch_size > per_rank:
        raise TrainingError(f"--batch-size {batch_size} is larger than the training set "
                            f"({n_train} samples in {source}"
                            + (f", {per_rank} per rank with {world_size} ranks" if world_size > 1 else "")
                            + "); use a smaller batch size or --batch-size full")
    return batch_size


def identity_config(s: Settings, data: DataBundle, world_size: int) -> dict[str, Any]:
    """The settings that define *which* run this is (hashed into every checkpoint).

    Excluded on purpose: epochs (a run may be extended; included when the LR schedule
    depends on it), device, threads, workers, compile/channels_last/progress (how, not what).
    """
    cfg = {
        "model": {"arch": s.arch, "width": s.width, "hidden": s.hidden,
                  "in_channels": data.meta["image_shape"][0],
                  "input_size": data.meta["image_shape"][1], "classes": data.num_classes},
        "data": {"fingerprint": data.fingerprint(), "n": data.meta["n"],
                 "content": dataset_content_hash(data.meta)},
        "batch_size": s.batch_size, "lr": s.lr, "weight_decay": s.weight_decay,
        "optimizer": s.optimizer, "scheduler": s.scheduler, "seed": s.seed,
        "augment": {"rotation_degrees": s.rotation_degrees, "hflip": s.hflip,
                    "crop_padding": s.crop_padding},
        "amp": bool(s.amp), "world_size": world_size,
    }
    if s.scheduler != "none":
        cfg["epochs"] = s.epochs
    return cfg


def dataset_content_hash(meta: dict[str, Any]) -> str:
    """Hash of what the dataset was made from: its input files' checksums and the
    conversion options it records (hpc data build's root attributes), without the output
    paths (moving results_dir does not make it another dataset). Files without those
    attributes are hashed by their images."""
    attrs = meta.get("attrs") or {}
    h = hashlib.sha256()
    if "input_checksums" in attrs and "config" in attrs:
        try:
            cfg = json.loads(attrs["config"])
        except (TypeError, ValueError):
            cfg = {"raw": str(attrs["config"])}
        if isinstance(cfg, dict):
            cfg = {k: v for k, v in cfg.items() if k not in ("output", "records")}
        h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
        h.update(str(attrs["input_checksums"]).encode())
    else:
        import h5py
        with h5py.File(meta["path"], "r") as fh:
            images = fh["images"]
            for i in range(0, images.shape[0], 1024):
                h.update(np.ascontiguousarray(images[i:i + 1024]).tobytes())
    return h.hexdigest()[:16]


def make_model(s: Settings, data: DataBundle) -> nn.Module:
    c, h, w = data.meta["image_shape"]
    if h != w:
        raise TrainingError(f"{s.data}: images are {h}x{w}; AlexNet needs square inputs")
    try:
        return build_model(s.arch, num_classes=data.num_classes, in_channels=c, input_size=h,
                           width=s.width, hidden=s.hidden)
    except ValueError as exc:
        raise TrainingError(f"{s.data}: {exc}") from None


def make_optimizer(s: Settings, model: nn.Module, steps_per_epoch: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    if s.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    elif s.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=0.9, weight_decay=s.weight_decay)
    else:
        raise TrainingError(f"optimizer={s.optimizer!r}: expected adam or sgd")
    if s.scheduler == "none":
        sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    elif s.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, s.epochs * steps_per_epoch))
    else:
        raise TrainingError(f"scheduler={s.scheduler!r}: expected none or cosine")
    return opt, sched


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP and/or torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


# ---------------------------------------------------------------- batches

class _ListSampler(torch.utils.data.Sampler[list[int]]):
    """Yields fixed batches of precomputed indices (the resumed tail of an epoch)."""

    def __init__(self, indices: Sequence[int], batch_size: int) -> None:
        self.batches = [list(indices[i:i + batch_size]) for i in range(0, len(indices), batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def epoch_indices(n: int, seed: int, epoch: int, rank: int, world_size: int) -> list[int]:
    """This rank's sample order in ``epoch``: DistributedSampler's, a pure function of
    (seed, epoch); with one rank, a seeded permutation of all samples."""
    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    return list(sampler)


def make_loader(dataset: SliceDataset, indices: Sequence[int], batch_size: int, workers: int,
                pin: bool) -> DataLoader:
    # a private generator: creating a DataLoader iterator otherwise draws a base seed from
    # the global torch RNG, which would shift dropout masks after a mid-epoch resume
    return DataLoader(dataset, batch_sampler=_ListSampler(indices, batch_size), num_workers=workers,
                      pin_memory=pin, persistent_workers=False,
                      generator=torch.Generator().manual_seed(len(indices)))


# ---------------------------------------------------------------- evaluation

def evaluate(model: nn.Module, dataset: SliceDataset, augment: Augment, device: torch.device,
             s: Settings, rank: int, world_size: int, num_classes: int, amp: bool,
             channels_last: bool) -> tuple[np.ndarray, float]:
    """Confusion matrix and summed loss over a split, sharded over ranks without padding
    (each sample counted exactly once) and summed with all-reduce."""
    pred, loss = predict(model, dataset, augment, device, s, rank, world_size, amp, channels_last)
    return confusion_matrix(dataset.labels, pred, num_classes), loss


def predict(model: nn.Module, dataset: SliceDataset, augment: Augment, device: torch.device,
            s: Settings, rank: int, world_size: int, amp: bool, channels_last: bool
            ) -> tuple[np.ndarray, float]:
    """Predicted class of every sample of a split (in dataset order, on every rank) and the
    summed loss. Ranks predict disjoint strided shards; an all-reduce of the one-hot
    placement (prediction + 1 at the sample's position, 0 elsewhere) assembles the whole."""
    model.eval()
    placed = torch.zeros(len(dataset), dtype=torch.int64, device=device)
    loss_sum = torch.zeros(1, dtype=torch.float64, device=device)
    indices = list(range(rank, len(dataset), world_size))
    criterion = nn.CrossEntropyLoss(reduction="sum")
    if indices:
        loader = make_loader(dataset, indices, s.eval_batch_size, s.workers, device.type == "cuda")
        at = torch.as_tensor(indices, dtype=torch.int64, device=device)
        start = 0
        with torch.no_grad():
            for x, y in loader:
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                x = augment.eval(x)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(device, amp):
                    out = model(x)
                loss_sum += criterion(out.float(), y).double()
                placed[at[start:start + len(y)]] = out.argmax(1) + 1
                start += len(y)
    ddp.all_reduce_sum(placed)
    ddp.all_reduce_sum(loss_sum)
    model.train()
    return (placed - 1).cpu().numpy(), float(loss_sum.item())


def _autocast(device: torch.device, amp: bool):  # type: ignore[no-untyped-def]
    if amp:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


# ---------------------------------------------------------------- output directory

def prepare_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write into a non-empty directory unless resuming or told to overwrite."""
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out-dir {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if overwrite:
            shutil.rmtree(out)
        elif not resume:
            raise TrainingError(f"--out-dir {out}: not empty; pass --resume to continue the run "
                                "there or --overwrite to replace it")
    from hpc.atomic import ensure_writable_dir
    try:
        ensure_writable_dir(out / "checkpoints")
    except OSError as exc:
        raise TrainingError(str(exc)) from None


# ---------------------------------------------------------------- the run

def run_training(s: Settings) -> int:
    """Run (or resume) one training run; return 0, or EXIT_PREEMPTED after a signal."""
    env = ddp.detect_env() if s.ddp else ddp.DistEnv(0, 1, 0, "single")
    if env.world_size > 1 and str(s.device).split(":")[0] in ("cuda", "auto") and ":" not in str(s.device):
        # one GPU per rank, by node-local rank, before anything opens a CUDA context
        from hpc.parallel.devices import bind_gpu_to_local_rank
        bind_gpu_to_local_rank(env.local_rank)
    device = resolve_device(s.device)
    if s.ddp and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", env.local_rank % torch.cuda.device_count())
    is_main = env.rank == 0
    on_gpu = device.type == "cuda"
    amp = on_gpu if s.amp is None else bool(s.amp)  # explicit --amp on CPU: bf16 autocast on CPU
    channels_last = on_gpu if s.channels_last is None else bool(s.channels_last)
    s.amp = amp
    threads = s.threads
    if threads is None and device.type == "cpu" and env.world_size > 1:
        threads = max(1, len(os.sched_getaffinity(0)) // env.world_size)
    if threads is not None:
        if threads < 1:
            raise TrainingError(f"--threads {threads}: must be >= 1")
        torch.set_num_threads(threads)
    set_determinism(s.deterministic, device)

    out = Path(s.out_dir)
    data = prepare_data(s, env.world_size)
    if is_main:
        prepare_out_dir(out, s.resume, s.overwrite)
    if s.ddp:
        ddp.init_distributed(env, device)
    try:
        return _run(s, env, device, data, out, amp, channels_last, threads)
    finally:
        ddp.shutdown()
        for d in (data.train, data.val, data.test):
            d.close()


def _run(s: Settings, env: ddp.DistEnv, device: torch.device, data: DataBundle, out: Path,
         amp: bool, channels_last: bool, threads: int | None) -> int:
    is_main = env.rank == 0
    seed_everything(s.seed)
    model = make_model(s, data).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if env.world_size > 1:
        # same initial weights on every rank (DDP also broadcasts rank 0's), but independent
        # dropout masks per rank: identical masks would correlate the ranks' gradients
        torch.manual_seed(s.seed * 1_000_003 + env.rank)
    ident = identity_config(s, data, env.world_size)
    signature = model_signature(model)
    indices_per_rank = len(epoch_indices(len(data.train), s.seed, 0, env.rank, env.world_size))
    steps_per_epoch = math.ceil(indices_per_rank / s.batch_size)
    optimizer, scheduler = make_optimizer(s, model, steps_per_epoch)

    ckpt_dir = out / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    start_epoch, start_step = 0, 0
    partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "train_s": 0.0}
    history: list[dict[str, Any]] = []
    best = {"metric": -1.0, "epoch": -1}
    elapsed_before = 0.0
    if s.resume:
        # A checkpoint of another dataset or other settings is not this run: rank 0 judges
        # (its answer is shared, so every rank takes the same path), moves the old run
        # directory aside (kept) and this run starts fresh.
        stale = checkpoint_mismatch(last_path, ident, signature) if is_main and last_path.exists() else None
        if ddp.any_rank(stale is not None, device):
            if is_main:
                aside = move_aside(out)
                prepare_out_dir(out, resume=True, overwrite=False)
                print(f"--resume: {stale}\n--resume: the old run is not this run; moved it to "
                      f"{aside} (kept) and starting a new run", file=sys.stderr)
            ddp.barrier()
    if s.resume and last_path.exists():
        try:
            state = load_checkpoint(last_path, ident, signature)
        except CheckpointError as exc:
            raise TrainingError(str(exc)) from None
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rank_rng = state["rng_per_rank"][env.rank] if "rng_per_rank" in state else state["rng"]
        set_rng_state(rank_rng)
        start_epoch, start_step = int(state["epoch"]), int(state["step"])
        partial = dict(state["partial"])
        history = list(state["history"])
        best = dict(state["best"])
        elapsed_before = float(state["elapsed_s"])
        if is_main:
            print(f"resuming {last_path}: epoch {start_epoch + 1}, step {start_step}", file=sys.stderr)
    elif s.resume and is_main:
        print(f"--resume: no checkpoint at {last_path}; starting a new run", file=sys.stderr)

    augment = Augment(tuple(data.mean), tuple(data.std), s.rotation_degrees, s.hflip, s.crop_padding)
    train_model: nn.Module = model
    if env.world_size > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if s.compile:
        train_model = torch.compile(train_model)  # type: ignore[assignment]
    # evaluation never goes through the DDP wrapper: ranks evaluate different numbers of
    # batches, and a wrapper forward may issue collectives
    eval_model: nn.Module = model if env.world_size > 1 else train_model
    criterion = nn.CrossEntropyLoss()
    k = data.num_classes
    run_params = {
        "arch": s.arch, "width": s.width, "hidden": s.hidden, "device": _record_device(device),
        "threads": torch.get_num_threads(), "world_size": env.world_size, "launcher": env.launcher,
        "batch_size": s.batch_size, "lr": s.lr, "optimizer": s.optimizer, "scheduler": s.scheduler,
        "weight_decay": s.weight_decay, "epochs": s.epochs, "seed": s.seed, "amp": amp,
        "channels_last": channels_last, "compile": s.compile, "deterministic": s.deterministic,
        "data": str(s.data), "data_fingerprint": data.fingerprint(),
        "split": data.meta.get("split_method", "unknown"),
        "n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test),
        "image_shape": list(data.meta["image_shape"]), "class_names": data.meta["class_names"],
        "experiment": s.experiment, "config_hash": config_hash(ident),
        "hosts": ddp.all_hosts(),
    }
    extra_prov = {"config": ident}

    def checkpoint_state(epoch: int, step: int) -> dict[str, Any]:
        rngs = [None] * env.world_size
        mine = rng_state()
        if env.world_size > 1:
            torch.distributed.all_gather_object(rngs, mine)
        else:
            rngs = [mine]
        return {"config": ident, "config_hash": config_hash(ident), "model_signature": signature,
                "model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": mine, "rng_per_rank": rngs,
                "epoch": epoch, "step": step, "partial": dict(partial), "history": list(history),
                "best": dict(best), "elapsed_s": elapsed_before + (time.perf_counter() - t_start),
                "mean": data.mean, "std": data.std, "class_names": data.meta["class_names"]}

    def epoch_records() -> list[Record]:
        return [Record(**h) for h in history]

    t_start = time.perf_counter()
    bar = None
    if is_main and s.progress:
        from tqdm import tqdm
        bar = tqdm(total=s.epochs, initial=start_epoch, desc=s.name, unit="epoch", file=sys.stderr,
                   dynamic_ncols=True)
    model.train()
    epochs_run = 0
    with PreemptionHandler() as stopper:
        for epoch in range(start_epoch, s.epochs):
            if s.stop_after_epochs is not None and epochs_run >= s.stop_after_epochs:
                break
            order = epoch_indices(len(data.train), s.seed, epoch, env.rank, env.world_size)
            step0 = start_step if epoch == start_epoch else 0
            if step0 == 0:
                partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "train_s": 0.0}
            loader = make_loader(data.train, order[step0 * s.batch_size:], s.batch_size, s.workers,
                                 device.type == "cuda")
            stopped = False
            # running sums stay on the device: no host sync per step on a GPU
            acc = torch.tensor([partial["loss_sum"], partial["correct"]], dtype=torch.float64,
                               device=device)

            def sync_partial() -> None:
                partial["loss_sum"], partial["correct"] = acc.tolist()

            t_epoch = time.perf_counter()
            for step, (x, y) in enumerate(loader, start=step0):
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                gen = step_generator(s.seed, epoch, step, env.rank)
                x = augment.train(x, gen)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(device, amp):
                    logits = train_model(x)
                    loss = criterion(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                acc[0] += loss.detach().double() * len(y)
                acc[1] += (logits.detach().argmax(1) == y).sum()
                partial["seen"] += len(y)
                if bar is not None and (device.type == "cpu" or step % 20 == 0):
                    bar.set_postfix_str(f"step {step + 1}/{steps_per_epoch} loss {loss.item():.3f}")
                # Ranks agree on stopping at the same step; the check is a collective with
                # a host-device sync, so it runs every STOP_CHECK_STEPS steps, not every step.
                if (step + 1) % STOP_CHECK_STEPS == 0 and ddp.any_rank(stopper.requested, device):
                    sync_partial()
                    partial["train_s"] += time.perf_counter() - t_epoch
                    state = checkpoint_state(epoch, step + 1)
                    if is_main:
                        save_checkpoint(last_path, state)
                        write_records(out / "metrics.jsonl", epoch_records())
                        print(f"{stopper.signal_name or 'signal'} received: checkpoint at epoch "
                              f"{epoch + 1} step {step + 1} written to {last_path}; exiting with "
                              f"{EXIT_PREEMPTED} (resume with --resume)", file=sys.stderr)
                    stopped = True
                    break
            if stopped:
                if bar is not None:
                    bar.close()
                return EXIT_PREEMPTED
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            partial["train_s"] += time.perf_counter() - t_epoch
            sync_partial()
            # global train sums over ranks
            sums = torch.tensor([partial["loss_sum"], partial["correct"], partial["seen"]],
                                dtype=torch.float64, device=device)
            ddp.all_reduce_sum(sums)
            train_loss = float(sums[0] / sums[2])
            train_acc = float(sums[1] / sums[2])
            images_per_s = float(sums[2]) / partial["train_s"]
            t_eval = time.perf_counter()
            metrics: dict[str, Any] = {"train_loss": train_loss, "train_accuracy": train_acc,
                                       "epoch_s": partial["train_s"], "images_per_s": images_per_s,
                                       "lr": optimizer.param_groups[0]["lr"]}
            if len(data.val):
                cm_val, loss_val = evaluate(eval_model, data.val, augment, device, s, env.rank,
                                            env.world_size, k, amp, channels_last)
                metrics["val_loss"] = loss_val / len(data.val)
                metrics["val_accuracy"] = accuracy_from_cm(cm_val)
            if s.eval_test_each_epoch and len(data.test):
                cm_t, loss_t = evaluate(eval_model, data.test, augment, device, s, env.rank,
                                        env.world_size, k, amp, channels_last)
                metrics["test_loss"] = loss_t / len(data.test)
                metrics["test_accuracy"] = accuracy_from_cm(cm_t)
            metrics["eval_s"] = time.perf_counter() - t_eval
            metrics["wall_s"] = elapsed_before + (time.perf_counter() - t_start)
            rec = new_record("training_epoch", f"{s.name} epoch {epoch + 1}",
                             {**run_params, "epoch": epoch + 1}, metrics, extra_provenance=extra_prov)
            history.append(dataclasses.asdict(rec))
            score = metrics.get("val_accuracy", train_acc)
            is_best = score > best["metric"]
            if is_best:
                best = {"metric": score, "epoch": epoch + 1}
            partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "train_s": 0.0}
            state = checkpoint_state(epoch + 1, 0)
            if is_main:
                save_checkpoint(last_path, state)
                if is_best:
                    save_checkpoint(best_path, state)
                write_records(out / "metrics.jsonl", epoch_records())
            epochs_run += 1
            if bar is not None:
                val = metrics.get("val_accuracy")
                bar.set_postfix_str(f"loss {train_loss:.3f} acc {train_acc:.3f}"
                                    + (f" val_acc {val:.3f}" if val is not None else "")
                                    + f" {images_per_s:.0f} img/s")
                bar.update(1)
            if ddp.any_rank(stopper.requested, device):
                if is_main:
                    print(f"{stopper.signal_name or 'signal'} received: checkpoint after epoch "
                          f"{epoch + 1} in {last_path}; exiting with {EXIT_PREEMPTED} (resume with --resume)",
                          file=sys.stderr)
                if bar is not None:
                    bar.close()
                return EXIT_PREEMPTED
    if bar is not None:
        bar.close()
    if len(history) < s.epochs:
        return 0  # stopped early on purpose (stop_after_epochs); checkpoint is resumable
    # Every epoch is done and checkpointed; the final evaluation takes seconds, so a
    # preemption signal arriving now is deferred: finishing beats requeueing a complete run.
    with PreemptionHandler() as late:
        code = _finish(s, env, device, data, out, eval_model, model, augment, history, best, amp,
                       channels_last, run_params, extra_prov,
                       elapsed_before + (time.perf_counter() - t_start), best_path)
    if late.requested and is_main:
        print(f"{late.signal_name} received during the final evaluation: the run finished "
              f"anyway (exit {code}, nothing to resume)", file=sys.stderr)
    return code


def test_counts(y_true: np.ndarray, y_pred: np.ndarray, subjects: np.ndarray,
                num_classes: int) -> dict[str, Any]:
    """Per-slice k/n with its 95 % Wilson interval, and per-subject majority-vote accuracy:
    what every reported test accuracy carries (the metric names of the training record)."""
    n = int(len(y_true))
    k = int(np.count_nonzero(np.asarray(y_true) == np.asarray(y_pred)))
    out: dict[str, Any] = {"test_correct": k, "test_count": n,
                           "test_accuracy_ci95": list(wilson_interval(k, n))}
    if n:
        ks, ns = subject_accuracy(y_true, y_pred, subjects, num_classes)
        out.update(subject_test_accuracy=ks / ns, subject_test_correct=ks, subject_test_count=ns)
    return out


def _finish(s: Settings, env: ddp.DistEnv, device: torch.device, data: DataBundle, out: Path,
            eval_model: nn.Module, model: nn.Module, augment: Augment, history: list[dict[str, Any]],
            best: dict[str, Any], amp: bool, channels_last: bool, run_params: dict[str, Any],
            extra_prov: dict[str, Any], wall_s: float, best_path: Path) -> int:
    """Test the final model (and the best-validation checkpoint), write the final records,
    confusion matrix CSV/PNG."""
    is_main = env.rank == 0
    k = data.num_classes
    names = data.meta["class_names"]
    pred, loss = predict(eval_model, data.test, augment, device, s, env.rank, env.world_size,
                         amp, channels_last)
    cm = confusion_matrix(data.test.labels, pred, k)
    precision, recall = precision_recall(cm)
    epochs_m = [h["metrics"] for h in history]
    train_time = sum(m["epoch_s"] for m in epochs_m)
    n_images = sum(m["images_per_s"] * m["epoch_s"] for m in epochs_m)
    per_epoch_ips = [m["images_per_s"] for m in epochs_m]
    steady = statistics.median(per_epoch_ips[1:] if len(per_epoch_ips) > 1 else per_epoch_ips)
    metrics: dict[str, Any] = {
        "test_accuracy": accuracy_from_cm(cm) if len(data.test) else float("nan"),
        **test_counts(data.test.labels, pred, data.test.subjects, k),
        "test_loss": loss / len(data.test) if len(data.test) else float("nan"),
        "precision": {n: float(p) for n, p in zip(names, precision)},
        "recall": {n: float(r) for n, r in zip(names, recall)},
        "confusion_matrix": cm.tolist(),
        "wall_s": wall_s, "train_s": train_time, "images_per_s": n_images / train_time,
        "steady_images_per_s": steady, "epochs_completed": len(history),
        "best_epoch": best["epoch"], "best_val_accuracy": best["metric"],
        "final_val_accuracy": epochs_m[-1].get("val_accuracy"),
        "final_train_accuracy": epochs_m[-1]["train_accuracy"],
    }
    target = [m.get("test_accuracy") for m in epochs_m]
    if any(t is not None for t in target):
        metrics["test_accuracy_per_epoch"] = target
    # the best-validation checkpoint's test accuracy (model selection without test peeking)
    # Decided from state every rank shares (rank 0's answer, broadcast), never from each
    # rank's own disk: with node-local output directories only rank 0 has best.pt, and a
    # rank that skipped the evaluation below would leave the others hanging in a collective.
    if ddp.any_rank(is_main and best_path.exists(), device) and len(data.test):
        final_state = {k_: v.detach().clone() for k_, v in unwrap(model).state_dict().items()}
        if is_main:
            unwrap(model).load_state_dict(load_checkpoint(best_path)["model"])
        ddp.broadcast_state(unwrap(model))
        cm_b, _ = evaluate(eval_model, data.test, augment, device, s, env.rank, env.world_size, k,
                           amp, channels_last)
        metrics["best_checkpoint_test_accuracy"] = accuracy_from_cm(cm_b)
        unwrap(model).load_state_dict(final_state)
    records = [Record(**h) for h in history]
    records.append(new_record("training", s.name, run_params, metrics, extra_provenance=extra_prov))
    if env.world_size > 1 or s.ddp:
        eff = None
        if s.baseline_images_per_s:
            eff = steady / (env.world_size * s.baseline_images_per_s)
        records.append(new_record("ddp", f"{s.name} ddp {env.world_size} ranks", run_params, {
            "images_per_s": steady, "images_per_s_per_rank": steady / env.world_size,
            "scaling_efficiency": eff, "baseline_images_per_s": s.baseline_images_per_s,
            "train_s": train_time, "test_accuracy": metrics["test_accuracy"],
            "allreduce_bytes_per_step": 4 * sum(p.numel() for p in unwrap(model).parameters()),
        }, extra_provenance=extra_prov))
    if is_main:
        write_confusion_csv(out / "confusion_matrix.csv", cm, names)
        write_confusion_png(out / "confusion_matrix.png", cm, names,
                            title=f"{s.name}: test accuracy {metrics['test_accuracy']:.4f}")
        write_records(out / "metrics.jsonl", records)
        print(f"{s.name}: test accuracy {metrics['test_accuracy']:.4f} after {len(history)} epochs, "
              f"{wall_s:.1f} s, {metrics['images_per_s']:.0f} images/s -> {out}", file=sys.stderr)
    return 0
