"""--configfile and --config reach the commands the rules run (the dataset stage end to
end), results_dir moves every output, and editing unrelated sections rebuilds nothing."""
from __future__ import annotations

import re

import h5py
import pytest

from workflow_support import make_sandbox, read_jsonl, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    return make_sandbox(tmp_path_factory.mktemp("workflow-config"))


def _image_side(path) -> int:
    with h5py.File(path, "r") as fh:
        return int(fh["images"].shape[-1])


def test_configfile_override_reaches_the_dataset_command(sandbox):
    (sandbox / "small.yaml").write_text("results_dir: out-a\ndataset:\n  image_size: 16\n")
    proc = snakemake(sandbox, "out-a/dataset/slices.h5", "--cores", "1", "--configfile",
                     "small.yaml", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert _image_side(sandbox / "out-a/dataset/slices.h5") == 16
    # results_dir moved the dataset's record too, and nothing went to results/
    (rec,) = read_jsonl(sandbox / "out-a/records/dataset.jsonl")
    assert rec["kind"] == "dataset" and rec["params"]["output"] == "out-a/dataset/slices.h5"
    assert not (sandbox / "results").exists()
    # the command read the generated merged config, not a file given to snakemake
    merged = list((sandbox / "out-a/config").glob("config-dataset-*.yaml"))
    assert len(merged) == 1 and "image_size: 16" in merged[0].read_text()

    # Editing the experiments list or the report options does not rebuild the dataset...
    (sandbox / "other.yaml").write_text("results_dir: out-a\ndataset:\n  image_size: 16\n"
                                        "experiments: [tests/workflow/scaling-tiny.yaml]\n"
                                        "report: {title: other}\n")
    proc = snakemake(sandbox, "out-a/dataset/slices.h5", "-n", "--cores", "1", "--configfile",
                     "other.yaml", timeout=300)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout, proc.stdout[-3000:]
    # ...and changing a dataset option does (Snakemake's params trigger).
    proc = snakemake(sandbox, "out-a/dataset/slices.h5", "-n", "--cores", "1", "--configfile",
                     "other.yaml", "--config", "dataset={image_size: 24}", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.search(r"rule build_dataset:", proc.stdout), proc.stdout[-3000:]


def test_command_line_config_override_reaches_the_dataset_command(sandbox):
    proc = snakemake(sandbox, "out-b/dataset/slices.h5", "--cores", "1", "--config",
                     "results_dir=out-b", "dataset={image_size: 20}", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert _image_side(sandbox / "out-b/dataset/slices.h5") == 20
