# Helpers shared by the workflow's rule files (the Snakefile includes this file first).
#
# Only functions and tables live here; the rules are in datasets/rules.smk,
# experiments/rules.smk and analysis/rules.smk (snakemake --lint wants functions and
# rules in separate files).
#
# What the experiment jobs write (R = config["results_dir"]):
#   R/kernels/<experiment>/<backend>.jsonl               one benchmark job per backend
#   R/scaling/<experiment>/<mode>/n<ranks>.jsonl         one MPI job per (mode, ranks)
#   R/training/<experiment>/<launch>/<run>/records.jsonl launch: cpu, gpu or ddp; a copy
#                                                        of the run's metrics.jsonl, published
#                                                        when the run is over; the directory
#                                                        (hpc train --out-dir) also keeps
#                                                        checkpoints/ and the confusion matrix
#   R/logs/...                                           one log per job
# Each of those files holds hpc.records JSON lines. A point that failed or was skipped
# still gets its file, with a record of status "failed" or "skipped" (hpc/workflow.py).
#
# How every rule gets its settings (in any rules file, e.g. experiments/inference.smk).
#
# * Configuration. Never read workflow.configfiles or config/config.yaml in a command:
#   `--configfile`/`--config` overrides would not reach it. A command that reads suite
#   configuration gets the merged, validated config as a generated file:
#       params:
#           config=merged_config_file("dataset"),   # the sections the command reads
#       shell: "python -m hpc ... --config {params.config} ..."
#   The file holds results_dir and the named sections only, and its name is their hash:
#   as a params entry it reruns the job exactly when those sections change (Snakemake's
#   params rerun trigger). Never make the whole config file an `input:`: editing the
#   experiments list would then rebuild the dataset and retrain. Output paths come from
#   results_path() (results_dir moves everything).
# * MPI. A rule that runs P ranks declares
#       threads: mpi_threads(...)        # threads PER RANK (1 unless configured), never
#                                        # ALL_CORES: Snakemake exports it as
#                                        # OMP_NUM_THREADS to every rank
#       resources: mpi="mpiexec", tasks=P, cpus_per_task=<threads per rank>
#   and runs `{resources.mpi} -n {resources.tasks} python -m hpc CMD ...
#   --expect-ranks {resources.tasks}`. The profile sets `mpi` to `srun --mpi=pmi2`
#   (slurm/config.yaml); --expect-ranks makes the command exit non-zero on every rank,
#   with a message naming both numbers, when the launcher started independent 1-rank
#   processes instead of one P-rank job (an srun without the right --mpi plugin).

import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from hpc.config import load_experiment, write_merged_config

# The interpreter running Snakemake is the suite's virtualenv (make run calls
# .venv/bin/snakemake). Its bin/ goes first on PATH so that every job's `python` and
# `mpiexec` (the PyPI mpich wheel) are the virtualenv's, even when it was not activated.
VENV_BIN = str(Path(sys.executable).parent)
if VENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ.update(PATH=os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")]))

RESULTS = config.get("results_dir", "results")

# Threads of a benchmark-like job: every core of a local run (`--cores N`), so that no two
# measurements share the machine. Cluster runs have no total core count; there the
# profile's set-threads gives each rule its CPUs per task (1 if it names none).
try:
    ALL_CORES = int(workflow.cores)
except (WorkflowError, TypeError, ValueError):
    ALL_CORES = 1

# Kernel backends that need a GPU: their benchmark jobs request one (resources gpu=1)
# and record themselves as skipped on a node without one. The study's backend has a CPU
# variant and GPU round-trip variants: an experiment listing `study` gets two jobs,
# `study` (the CPU variant, CPU rule) and `study-gpu` (the round trips, GPU rule).
STUDY_GPU_LABELS = tuple(f"study:{v}" for v in ("gpu-roundtrip-matmul1", "gpu-roundtrip-matmul2",
                                                 "gpu-roundtrip-matmul3"))
GPU_BACKENDS = ("numba-cuda", "cupy", "torch-cuda", "cuda", "study-gpu")

# Generated per-run configuration files (merged_config_file()).
CONFIG_DIR = str(Path(RESULTS, "config"))


def results_path(*parts) -> str:
    """A path under the configured results directory, as a str (what Snakemake wants)."""
    return str(Path(RESULTS, *map(str, parts)))


def merged_config_file(*sections) -> str:
    """The merged, validated config of this run (all --configfile/--config overrides) as
    a file for a command's --config, restricted to results_dir + ``sections``; its name
    is content-addressed (hpc.config.write_merged_config). Use it as a params entry."""
    return str(write_merged_config(config, CONFIG_DIR, tuple(sections)))


def _load_experiments(paths) -> dict:
    """Read and validate every experiment YAML listed in config["experiments"].

    Validation uses hpc.config.load_experiment, the same schema as the CLIs, and happens
    when the workflow is parsed: a typo fails `snakemake -n` at once, not hours into a
    run. Names must be unique: they name the output directories.
    """
    experiments = {}
    for path in paths:
        spec = load_experiment(path)
        spec["_path"] = str(path)
        name = spec["name"]
        if name in experiments:
            raise ValueError(
                f"config experiments: experiment name {name!r} is used by both "
                f"{experiments[name]['_path']} and {path}; names must be unique")
        experiments[name] = spec
    return experiments


EXPERIMENTS = _load_experiments(config.get("experiments", []))


def experiments_of(kind: str) -> list:
    """The loaded experiment specs of one kind (kernels, scaling or training)."""
    return [spec for spec in EXPERIMENTS.values() if spec["kind"] == kind]


def experiment_file(wildcards) -> str:
    """Input function: the YAML that defines the experiment named by {experiment}."""
    return EXPERIMENTS[wildcards.experiment]["_path"]


def dataset_file(wildcards=None) -> str:
    """The HDF5 slice dataset (the output of the dataset stage's build_dataset job)."""
    return str(rules.build_dataset.output[0])


def _alternation(names) -> str:
    return "|".join(re.escape(n) for n in sorted(names))


# {backend} patterns of the two benchmark rules: GPU backends go to the rule that
# requests a GPU, all others to the CPU one (a negative lookahead keeps them disjoint).
GPU_BACKEND_RE = f"(?:{_alternation(GPU_BACKENDS)})"
CPU_BACKEND_RE = f"(?!(?:{_alternation(GPU_BACKENDS)})(?![A-Za-z0-9_-]))[A-Za-z0-9_-]+"


# --------------------------------------------------------------------------- sweep points


def kernel_backends(spec: dict) -> list:
    """Backends of a kernels experiment: one benchmark job each (`study` -> two jobs)."""
    out = []
    for b in spec.get("backends") or []:
        out.append(str(b))
        if str(b) == "study":
            out.append("study-gpu")
    return out


def bench_backend_filter(wildcards) -> str:
    """`hpc bench kernels --backends` of one job: the backend, or the study's variants."""
    if wildcards.backend == "study":
        return "study:serial"
    if wildcards.backend == "study-gpu":
        return " ".join(STUDY_GPU_LABELS)
    return wildcards.backend


def mpi_threads(wildcards) -> int:
    """Threads per rank of an MPI job (scaling: threads_per_rank; DDP: the run's threads)."""
    spec = EXPERIMENTS[wildcards.experiment]
    if spec["kind"] == "training":
        return int(training_run(wildcards).get("threads") or 1)
    return int(spec.get("threads_per_rank") or 1)


def kernel_points() -> list:
    """(experiment, backend) pairs of every kernels experiment."""
    return [(spec["name"], b) for spec in experiments_of("kernels") for b in kernel_backends(spec)]


def scaling_points() -> list:
    """(experiment, mode, ranks) triples of every scaling experiment: one MPI job each."""
    points = []
    for spec in experiments_of("scaling"):
        for mode in spec.get("modes") or []:
            for ranks in spec.get("ranks") or []:
                points.append((spec["name"], str(mode), int(ranks)))
    return points


def scaling_workdir(wildcards) -> str:
    """Scratch directory of `hpc scale` (its HDF5 inputs and outputs) for one mode.

    One per (experiment, mode): jobs of different rank counts reuse the generated inputs
    and name their outputs by rank count, so jobs running at the same time on a cluster
    never write the same file. It stays on the shared filesystem (the parallel-io path
    needs every rank to see it) and is left in place as an input cache.
    """
    return results_path("scaling", wildcards.experiment, wildcards.mode, "work")


def training_runs(spec: dict) -> list:
    """The runs of a training experiment, each a dict with name, device and ranks."""
    runs = []
    for run in spec.get("runs") or []:
        run = dict(run)
        run.setdefault("device", "cpu")
        run.setdefault("ranks", 1)
        runs.append(run)
    return runs


def run_launch(run: dict) -> str:
    """How a training run is launched: ddp across ranks, else gpu or cpu by its device."""
    if int(run["ranks"]) > 1:
        return "ddp"
    return "gpu" if str(run["device"]) in ("cuda", "gpu") else "cpu"


def training_points() -> list:
    """(experiment, launch, run name) triples: one training job each."""
    return [(spec["name"], run_launch(run), run["name"])
            for spec in experiments_of("training") for run in training_runs(spec)]


def training_run(wildcards) -> dict:
    """The run dict named by the {experiment} and {run} wildcards."""
    for run in training_runs(EXPERIMENTS[wildcards.experiment]):
        if run["name"] == wildcards.run:
            return run
    raise ValueError(f"experiment {wildcards.experiment!r} has no training run {wildcards.run!r}")


def training_ranks(wildcards) -> int:
    return int(training_run(wildcards)["ranks"])


def training_on_gpu(wildcards) -> bool:
    return str(training_run(wildcards)["device"]).startswith(("cuda", "gpu"))


def training_gpu_flag(wildcards) -> str:
    """`--needs-gpu` for a DDP run on GPUs (it is skipped without one), else nothing."""
    return "--needs-gpu" if training_on_gpu(wildcards) else ""


def ddp_gpus(wildcards) -> int:
    """GPUs of a DDP job: one per rank on cuda (sbatch --gpus=P --ntasks-per-gpu=1)."""
    return training_ranks(wildcards) if training_on_gpu(wildcards) else 0


# --------------------------------------------------------------------------- record files


def kernel_record_files() -> list:
    return [results_path("kernels", exp, f"{backend}.jsonl") for exp, backend in kernel_points()]


def scaling_record_files() -> list:
    return [results_path("scaling", exp, mode, f"n{ranks}.jsonl")
            for exp, mode, ranks in scaling_points()]


def training_record_files() -> list:
    return [results_path("training", exp, launch, run, "records.jsonl")
            for exp, launch, run in training_points()]


def dataset_record_files() -> list:
    """The dataset stage's record file(s), if its build_dataset job declares any (.jsonl)."""
    return [str(f) for f in rules.build_dataset.output if str(f).endswith(".jsonl")]


def all_record_files() -> list:
    """Every JSONL record file the workflow produces: the input of the report.

    For analysis/rules.smk: `input: records=lambda wildcards: all_record_files()`.
    One file per sweep point of every experiment in config["experiments"] (kernel
    benchmark per backend, MPI scaling per (mode, ranks), training per run), plus the
    dataset stage's record file when it writes one. Each file exists once its job ran,
    also for failed and skipped points: those files hold a record with status "failed"
    or "skipped" and the reason in `error`, so the report shows them instead of silently
    dropping them.
    """
    return (dataset_record_files() + kernel_record_files() + scaling_record_files()
            + training_record_files() + compression_record_files() + inference_record_files())


def results_root_of_entry(wildcards, output) -> str:
    """The results directory a history entry (R/records/history-entry.csv) belongs to."""
    return str(Path(output.entry).parents[1])
