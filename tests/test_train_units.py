"""Pure parts of hpc.train: metrics, transforms, data validation, checkpoints, DDP env."""
from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hpc.train import metrics as M
from hpc.train import transforms as T
from hpc.train.checkpoint import (CheckpointError, config_hash, load_checkpoint, model_signature,
                                  rng_state, save_checkpoint, set_rng_state)
from hpc.train.data import DatasetError, SliceDataset, channel_stats, check_training_classes, validate_file
from hpc.train.ddp import DistEnv, DistributedSetupError, detect_env, first_slurm_host
from hpc.train.lr_find import lr_schedule, smooth, suggest
from hpc.train.synthetic import write_synthetic_dataset


@pytest.fixture(scope="module")
def h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("d") / "syn.h5", n_per_class=20, size=32)


# ------------------------------------------------------------------ metrics

def test_confusion_matrix_precision_recall_known_values() -> None:
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 2, 0]
    cm = M.confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    assert M.accuracy(y_true, y_pred) == pytest.approx(6 / 9)
    assert M.accuracy_from_cm(cm) == pytest.approx(6 / 9)
    p, r = M.precision_recall(cm)
    np.testing.assert_allclose(p, [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(r, [2 / 3, 1 / 2, 3 / 4])
    assert M.confusion_csv(cm, ["a", "b", "c"]).splitlines() == [
        "true\\predicted,a,b,c", "a,2,1,0", "b,0,1,1", "c,1,0,3"]


def test_precision_of_never_predicted_class_is_nan() -> None:
    p, r = M.precision_recall(M.confusion_matrix([0, 1, 2], [0, 0, 0], 3))
    assert p[0] == pytest.approx(1 / 3) and math.isnan(p[1]) and math.isnan(p[2])
    assert r.tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="y_pred"):
        M.confusion_matrix([0], [3], 3)


def _wilson_by_formula(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(94, 99), (0, 10), (10, 10), (474, 488), (1, 2), (200, 401)])
def test_wilson_interval_matches_the_closed_form(k: int, n: int) -> None:
    low, high = M.wilson_interval(k, n)
    exp_low, exp_high = _wilson_by_formula(k, n)
    assert low == pytest.approx(max(0.0, exp_low), abs=1e-9) and high == pytest.approx(min(1.0, exp_high), abs=1e-9)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_interval_of_nothing_is_nan_and_bad_counts_are_refused() -> None:
    assert all(math.isnan(v) for v in M.wilson_interval(0, 0))
    with pytest.raises(ValueError, match="correct=5 must be in 0..count=4"):
        M.wilson_interval(5, 4)


def test_subject_accuracy_is_a_majority_vote_over_each_subjects_slices() -> None:
    y_true = [0, 0, 0, 1, 1, 1, 1, 2, 2]
    y_pred = [0, 1, 0, 1, 0, 0, 2, 2, 0]      # a: 2 of 3 right; b: votes 0,0 vs 1 -> wrong; c: tie 0/2 -> 0
    subjects = ["a", "a", "a", "b", "b", "b", "b", "c", "c"]
    assert M.majority_vote(y_pred, subjects, 3) == {"a": 0, "b": 0, "c": 0}
    assert M.subject_accuracy(y_true, y_pred, subjects, 3) == (1, 3)
    with pytest.raises(ValueError, match="subject 'a' has slices of several classes"):
        M.subject_accuracy([0, 1], [0, 1], ["a", "a"], 2)


def test_confusion_png_and_csv_written(tmp_path: Path) -> None:
    cm = np.array([[3, 1], [0, 4]])
    M.write_confusion_csv(tmp_path / "cm.csv", cm, ["x", "y"])
    M.write_confusion_png(tmp_path / "cm.png", cm, ["x", "y"])
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.csv", "cm.png"]


# ------------------------------------------------------------------ transforms

def test_hflip_and_crop_against_numpy() -> None:
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    assert torch.equal(T.random_hflip(x, T.step_generator(0, 0, 0), p=1.0), x.flip(-1))
    assert torch.equal(T.random_hflip(x, T.step_generator(0, 0, 0), p=0.0), x)
    g1, g2 = T.step_generator(3, 1, 2), T.step_generator(3, 1, 2)
    out = T.random_crop(x, 2, g1)
    offsets = torch.randint(0, 5, (2, 2), generator=g2).tolist()
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i, (dy, dx) in enumerate(offsets):
        np.testing.assert_array_equal(out[i].numpy(), padded[i, :, dy:dy + 6, dx:dx + 6])


def test_rotation_small_angles_and_identity() -> None:
    x = torch.zeros(4, 1, 32, 32)
    x[:, :, 8:24, 8:24] = 1.0
    assert torch.equal(T.random_rotation(x, 0.0, T.step_generator(0, 0, 0)), x)
    y = T.random_rotation(x, 5.0, T.step_generator(0, 0, 0))
    # the centre of a square stays inside; total mass is (nearly) preserved by a rotation
    assert torch.all(y[:, :, 14:18, 14:18] > 0.99)
    assert torch.allclose(y.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=0.03)
    assert not torch.equal(y, x)


def test_augmentation_is_deterministic_per_step() -> None:
    aug = T.Augment(mean=(0.5,), std=(2.0,))
    x = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    a = aug.train(x, T.step_generator(7, 2, 5))
    b = aug.train(x, T.step_generator(7, 2, 5))
    c = aug.train(x, T.step_generator(7, 2, 6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(aug.eval(x), (x - 0.5) / 2.0)


# ------------------------------------------------------------------ data

def test_dataset_reads_items_and_stats(h5: Path) -> None:
    meta = validate_file(h5)
    ds = SliceDataset(h5, "train", preload=False, meta=meta)
    with h5py.File(h5) as f:
        idx = np.flatnonzero(f["split"][...] == 0)
        ref = f["images"][idx]
        labels = f["labels"][idx]
    x, y = ds[3]
    np.testing.assert_array_equal(x.numpy(), ref[3])
    assert int(y) == labels[3]
    mean, std = channel_stats(ds)
    assert mean[0] == pytest.approx(float(ref.astype(np.float64).mean()), abs=1e-9)
    assert std[0] == pytest.approx(float(ref.astype(np.float64).std()), rel=1e-9)
    pre = SliceDataset(h5, "train", preload=True, meta=meta)
    np.testing.assert_array_equal(pre[3][0].numpy(), ref[3])


def test_dataset_with_dataloader_worker_processes(h5: Path) -> None:
    ds = SliceDataset(h5, "test", preload=False)
    direct = torch.stack([ds[i][0] for i in range(len(ds))])
    ds.close()
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2)
    via_workers = torch.cat([x for x, _ in loader])
    assert torch.equal(direct, via_workers)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope\.h5: dataset file not found"):
        validate_file(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path: Path) -> None:
    bad = tmp_path / "fake.h5"
    bad.write_text("this is not HDF5")
    with pytest.raises(DatasetError, match=r"fake\.h5: not an HDF5 file"):
        validate_file(bad)


def test_missing_datasets(tmp_path: Path) -> None:
    p = tmp_path / "partial.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("images", data=np.zeros((4, 1, 8, 8), np.float32))
        f.create_dataset("labels", data=np.zeros(4, np.int64))
    with pytest.raises(DatasetError, match=r"partial\.h5: missing HDF5 dataset\(s\) \['class_names', 'split'\]"):
        validate_file(p)


def test_class_without_training_samples(tmp_path: Path) -> None:
    p = write_synthetic_dataset(tmp_path / "hole.h5", n_per_class=6, empty_train_class=1)
    with pytest.raises(DatasetError, match=r"class\(es\) \['class1'\] have no training samples"):
        check_training_classes(validate_file(p))


def test_label_out_of_range(tmp_path: Path) -> None:
    p = write_synthetic_dataset(tmp_path / "lab.h5", n_per_class=4)
    with h5py.File(p, "r+") as f:
        f["labels"][0] = 7
    with pytest.raises(DatasetError, match="outside 0..2"):
        validate_file(p)


# ------------------------------------------------------------------ checkpoints

def test_checkpoint_roundtrip_restores_rngs(tmp_path: Path) -> None:
    import random
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    model = torch.nn.Linear(3, 2)
    cfg = {"model": {"arch": "x"}, "lr": 0.1}
    save_checkpoint(tmp_path / "c.pt", {"config": cfg, "config_hash": config_hash(cfg),
                                        "model_signature": model_signature(model),
                                        "model": model.state_dict(), "rng": rng_state()})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    state = load_checkpoint(tmp_path / "c.pt", cfg, model_signature(model))
    set_rng_state(state["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp files left


def test_checkpoint_from_other_config_or_model_refused(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    cfg = {"model": {"arch": "x"}, "lr": 0.1, "seed": 1}
    save_checkpoint(tmp_path / "c.pt", {"config": cfg, "config_hash": config_hash(cfg),
                                        "model_signature": model_signature(model),
                                        "model": model.state_dict()})
    with pytest.raises(CheckpointError, match=r"different configuration.*lr \(0\.1 in checkpoint, 0\.01 now\)"):
        load_checkpoint(tmp_path / "c.pt", {**cfg, "lr": 0.01}, model_signature(model))
    with pytest.raises(CheckpointError, match="different model"):
        load_checkpoint(tmp_path / "c.pt", cfg, model_signature(torch.nn.Linear(4, 2)))
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


# ------------------------------------------------------------------ DDP environment, LR finder

@pytest.mark.parametrize("env,expected", [
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1"},
     DistEnv(1, 4, 1, "openmpi")),
    ({"PMI_RANK": "0", "PMI_SIZE": "2", "MPI_LOCALRANKID": "0"}, DistEnv(0, 2, 0, "mpich")),
    ({"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}, DistEnv(3, 8, 1, "slurm")),
    ({"RANK": "2", "WORLD_SIZE": "3"}, DistEnv(2, 3, 2, "torchrun")),
    ({}, DistEnv(0, 1, 0, "single")),
])
def test_detect_env(env: dict, expected: DistEnv) -> None:
    assert detect_env(env) == expected


def test_detect_env_errors_and_nodelist() -> None:
    with pytest.raises(DistributedSetupError, match="PMI_RANK=5 outside 0..1"):
        detect_env({"PMI_RANK": "5", "PMI_SIZE": "2"})
    assert first_slurm_host("node[003-005,9],gpu1") == "node003"
    assert first_slurm_host("gpu7") == "gpu7"


def test_lr_finder_math() -> None:
    lrs = lr_schedule(1e-6, 1.0, 7)
    np.testing.assert_allclose(lrs, [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    assert smooth([2.0, 2.0, 2.0]).tolist() == pytest.approx([2.0, 2.0, 2.0])
    # a loss that falls fastest around 1e-3 then explodes
    grid = lr_schedule(1e-6, 1.0, 61)
    loss = 2.0 - np.tanh((np.log10(grid) + 3) * 2) + np.where(grid > 0.1, 50 * grid, 0)
    steepest, min_lr = suggest(grid, loss, skip_start=0, skip_end=0)
    assert steepest == pytest.approx(1e-3, rel=0.3)


def test_resolve_batch_size() -> None:
    from hpc.train.loop import TrainingError, resolve_batch_size
    assert resolve_batch_size("full", 195, 1, "d.h5") == 195
    assert resolve_batch_size("full", 195, 2, "d.h5") == 98
    assert resolve_batch_size("64", 195, 1, "d.h5") == 64
    with pytest.raises(TrainingError, match=r"--batch-size 256 is larger than the training set \(195 samples in d\.h5\)"):
        resolve_batch_size(256, 195, 1, "d.h5")
    with pytest.raises(TrainingError, match="98 per rank with 2 ranks"):
        resolve_batch_size(100, 195, 2, "d.h5")
    with pytest.raises(TrainingError, match="expected an integer or 'full'"):
        resolve_batch_size("half", 195, 1, "d.h5")


@pytest.mark.parametrize("name", ["training-laptop", "training-study"])
def test_shipped_experiments_validate(name: str) -> None:
    from hpc.config import load_experiment
    root = Path(__file__).resolve().parent.parent
    exp = load_experiment(root / "experiments" / f"{name}.yaml")
    assert exp["kind"] == "training" and exp["runs"]
    for run in exp["runs"]:
        assert run["arch"] == "alexnet-small" and run["width"] == 1.0 and run["hidden"] == 4096
    if name == "training-study":
        assert {r["name"]: (r["lr"], r["epochs"], r["optimizer"]) for r in exp["runs"]} == {
            "cpu": (0.001, 50, "adam"), "gpu": (0.001, 50, "adam")}


# ------------------------------------------------------------------ time to accuracy

def test_time_to_accuracy_finds_the_first_epoch_at_or_above_the_target() -> None:
    from hpc.train.time_to_accuracy import Reached, first_reaching, median_reached

    epochs = [{"test_accuracy": a, "epoch_s": 10.0, "wall_s": 12.0 * i}
              for i, a in enumerate([0.5, 0.96, 0.9, 0.99], start=1)]
    r = first_reaching(epochs, 0.9495, "a")
    assert (r.epoch, r.wall_s, r.train_s, r.final_test_accuracy) == (2, 24.0, 20.0, 0.99)
    never = first_reaching(epochs[:1], 0.9495, "b")
    assert never.epoch is None and never.epochs_run == 1
    assert median_reached([r, r, never]) == (2, 24.0, 20.0)
    assert median_reached([r, never, never]) is None
    assert isinstance(r, Reached)
