"""The compression stage starting from the training stage's checkpoint (base.from_training)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hpc.compress.evaluation import accuracy, load_data, predict
from hpc.compress.runner import MODEL_FILE, CompressionError, load_model, run_base
from hpc.compress.trained import TrainedBaseError, load_trained_base
from hpc.models.alexnet import build_model
from hpc.records import read_records
from hpc.train.checkpoint import load_checkpoint
from hpc.train.loop import Settings, run_training
from hpc.train.synthetic import write_synthetic_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny hpc train run: (dataset, its best.pt)."""
    root = tmp_path_factory.mktemp("t")
    h5 = write_synthetic_dataset(root / "syn.h5", n_per_class=40, size=32, seed=1)
    out = root / "run"
    assert run_training(Settings(data=str(h5), out_dir=str(out), epochs=3, batch_size=32, lr=1e-3, width=0.25,
                                 hidden=64, threads=1, device="cpu", progress=False, seed=0)) == 0
    return h5, out / "checkpoints" / "best.pt"


def _spec(from_training: bool = True) -> dict:
    base = {"arch": "alexnet-small", "width": 0.25, "hidden": 64, "epochs": 1, "batch_size": 32, "lr": 1e-3,
            "seed": 0}
    if from_training:
        base["from_training"] = {"experiment": "t", "run": "cpu"}
    return {"name": "c", "_path": "c.yaml", "threads": 1, "base": base}


def test_base_loaded_from_a_training_checkpoint_predicts_like_the_training_run(trained, tmp_path: Path) -> None:
    h5, best = trained
    out = tmp_path / "base"
    out.mkdir()
    lines: list[str] = []
    model = run_base(_spec(), str(h5), out, out / "records.jsonl", log=lines.append, checkpoint=best)
    state = load_checkpoint(best)
    cfg = state["config"]["model"]
    reference = build_model(cfg["arch"], num_classes=cfg["classes"], in_channels=cfg["in_channels"],
                            input_size=cfg["input_size"], width=cfg["width"], hidden=cfg["hidden"])
    reference.load_state_dict(state["model"])
    data = load_data(h5)
    assert torch.equal(predict(model, data.test.x), predict(reference, data.test.x))
    (rec,) = read_records([out / "records.jsonl"])
    assert rec.params["source"] == str(best) and rec.params["epochs"] == state["epoch"]
    assert rec.metrics["test_correct"] == accuracy(reference, data.test).correct
    # the training run's own record of its best checkpoint agrees with this stage's evaluation
    final = [r for r in read_records([best.parent.parent / "metrics.jsonl"]) if r.kind == "training"][-1]
    assert rec.metrics["test_accuracy"] == pytest.approx(final.metrics["best_checkpoint_test_accuracy"])
    saved, _ = load_model(out / MODEL_FILE)
    assert torch.equal(predict(saved, data.test.x), predict(model, data.test.x))
    assert any("loaded" in line for line in lines)


def test_checkpoint_of_another_dataset_is_refused(trained, tmp_path: Path) -> None:
    _, best = trained
    other = write_synthetic_dataset(tmp_path / "other.h5", n_per_class=40, size=32, seed=2)
    with pytest.raises(TrainedBaseError, match="trained on another dataset"):
        load_trained_base(best, load_data(other))


def test_from_training_without_a_checkpoint_names_the_run(trained, tmp_path: Path) -> None:
    h5, _ = trained
    with pytest.raises(CompressionError, match="c.yaml: base.from_training names training run t/cpu"):
        run_base(_spec(), str(h5), tmp_path, tmp_path / "r.jsonl")
    assert not (tmp_path / "r.jsonl").exists()


def test_missing_checkpoint_is_a_clear_error(trained, tmp_path: Path) -> None:
    h5, _ = trained
    with pytest.raises(CompressionError, match="checkpoint not found.*did the training run finish"):
        run_base(_spec(), str(h5), tmp_path, tmp_path / "r.jsonl", checkpoint=tmp_path / "none.pt")


def test_checkpoint_normalised_differently_is_refused(trained, tmp_path: Path) -> None:
    h5, best = trained
    state = torch.load(best, map_location="cpu", weights_only=True)
    state["mean"] = [m + 1.0 for m in state["mean"]]
    other = tmp_path / "best.pt"
    torch.save(state, other)
    with pytest.raises(TrainedBaseError, match=r"normalised with mean .*training-split statistics"):
        load_trained_base(other, load_data(h5))


def test_report_names_where_the_base_network_came_from(trained, tmp_path: Path) -> None:
    from hpc.analysis import plots
    from hpc.analysis.aggregate import load_frame
    from hpc.analysis.section_compression import compression_section

    h5, best = trained
    loaded, own = tmp_path / "loaded", tmp_path / "own"
    for d in (loaded, own):
        d.mkdir()
    run_base(_spec(), str(h5), loaded, loaded / "records.jsonl", checkpoint=best)
    spec = _spec(from_training=False)
    spec["name"] = "c2"
    run_base(spec, str(h5), own, own / "records.jsonl")
    df = load_frame([loaded / "records.jsonl", own / "records.jsonl"])
    sec = compression_section(df, plots.FigureSink(None))
    tables = {title: t for title, t, _ in sec.tables}
    rows = tables["The full-precision networks every method starts from"].rows
    assert any(f"training stage checkpoint {best}" in " ".join(r) for r in rows)
    assert any("trained by the experiment, 1 epochs" in " ".join(r) for r in rows)
