# Helpers of the compression rules (experiments/compression.smk); functions only, so that
# `snakemake --lint` stays clean (it wants functions and rules in separate files).
#
# What the compression jobs write (R = config["results_dir"]):
#   R/compression/<experiment>/base/records.jsonl   the base network's record; the directory
#                                                    also keeps model.pt for the runs
#   R/compression/<experiment>/<run>/records.jsonl  one job per run (kmeans, conv, netadapt,
#                                                    binary); the directory keeps packed models

COMPRESSION_NEEDS_BASE = ("kmeans", "netadapt", "binary")


def compression_runs(spec: dict) -> list:
    """The runs of a compression experiment; 'base' is reserved for the base network's job."""
    runs = list(spec.get("runs") or [])
    for run in runs:
        if run["name"] == "base":
            raise ValueError(f"{spec['_path']}: run name 'base' is reserved (the base network's job)")
    return runs


def compression_points() -> list:
    """(experiment, run) pairs of every compression experiment: one job each."""
    return [(spec["name"], run["name"]) for spec in experiments_of("compression")
            for run in compression_runs(spec)]


def compression_method(wildcards) -> str:
    for run in compression_runs(EXPERIMENTS[wildcards.experiment]):
        if run["name"] == wildcards.run:
            return run["method"]
    raise ValueError(f"experiment {wildcards.experiment!r} has no compression run {wildcards.run!r}")


def compression_threads(wildcards) -> int:
    """Cores a compression job uses, so that Snakemake runs the single-threaded ones side by side.

    Training and evaluation jobs use the experiment's ``threads`` (torch threads; all cores
    when it is unset). The clustered-convolution benchmark times its points at every thread
    count of its run, so it takes all cores of a local run and measures alone. Snakemake
    caps a request above ``--cores``.
    """
    spec = EXPERIMENTS[wildcards.experiment]
    run = getattr(wildcards, "run", "base")
    if run != "base" and compression_method(wildcards) == "conv":
        return ALL_CORES
    return int(spec.get("threads") or ALL_CORES)


def compression_run_inputs(wildcards) -> dict:
    """The experiment file, plus the dataset and the base network for the methods that need them."""
    inputs = {"experiment": experiment_file(wildcards)}
    if compression_method(wildcards) in COMPRESSION_NEEDS_BASE:
        inputs["data"] = dataset_file()
        inputs["base"] = results_path("compression", wildcards.experiment, "base", "records.jsonl")
    return inputs


def compression_record_files() -> list:
    files = [results_path("compression", spec["name"], "base", "records.jsonl")
             for spec in experiments_of("compression")
             if any(r["method"] in COMPRESSION_NEEDS_BASE for r in compression_runs(spec))]
    return files + [results_path("compression", exp, run, "records.jsonl") for exp, run in compression_points()]
