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


def compression_training_source(experiment: str):
    """(training records file, checkpoint) of the run that ``base.from_training`` names, or None."""
    spec = EXPERIMENTS[experiment]
    source = (spec.get("base") or {}).get("from_training")
    if not source:
        return None
    where = f"{spec['_path']}: base.from_training {source['experiment']}/{source['run']}"
    training = EXPERIMENTS.get(source["experiment"])
    if training is None or training.get("kind") != "training":
        raise WorkflowError(f"{where}: no training experiment {source['experiment']!r} in the config's "
                            "experiments list")
    runs = {run["name"]: run for run in training_runs(training)}
    if source["run"] not in runs:
        raise WorkflowError(f"{where}: {source['experiment']} has no run {source['run']!r}; runs: {sorted(runs)}")
    records = results_path("training", source["experiment"], run_launch(runs[source["run"]]), source["run"],
                           "records.jsonl")
    return records, os.path.join(os.path.dirname(records), "checkpoints", "best.pt")


def compression_base_inputs(wildcards) -> dict:
    """The experiment file, the dataset and, with base.from_training, that training run's records."""
    inputs = {"experiment": experiment_file(wildcards), "data": dataset_file()}
    source = compression_training_source(wildcards.experiment)
    if source:
        inputs["training"] = source[0]
    return inputs


def compression_base_source_flag(wildcards) -> str:
    """`--from-checkpoint PATH` when the base network comes from the training stage."""
    source = compression_training_source(wildcards.experiment)
    return f"--from-checkpoint {source[1]}" if source else ""


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
