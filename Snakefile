# The whole suite as one Snakemake workflow: NIfTI -> HDF5 dataset, kernel benchmarks,
# MPI scaling sweeps, AlexNet training, and the HTML report.
#
#   snakemake --cores 2                 run everything locally (what `make run` does)
#   snakemake --profile slurm           submit every job to SLURM (see slurm/config.yaml)
#   snakemake -n                        list the jobs that would run
#
# What runs is declared in config/config.yaml (validated below against
# hpc/schemas/config.schema.yaml) and in the experiments/*.yaml files it lists.
# `--configfile my.yaml` and `--config key=value` are merged into `config` by Snakemake;
# the rules hand that merged, validated config to their commands as a generated file
# (merged_config_file() in experiments/common.smk), never one of the input files.

from snakemake.utils import min_version, validate

from hpc.config import coerce_override_strings, resolve_paths

min_version("9.0")


configfile: "config/config.yaml"


config.update(coerce_override_strings(config))
validate(config, "hpc/schemas/config.schema.yaml")
config.update(resolve_paths(config))


include: "experiments/common.smk"
include: "experiments/compression-common.smk"
include: "datasets/rules.smk"
include: "experiments/rules.smk"
include: "experiments/compression.smk"
include: "experiments/inference-points.smk"
include: "experiments/inference.smk"
include: "analysis/rules.smk"


rule all:
    input:
        results_path("report.html"),
        results_path("records", "history-entry.csv"),
    default_target: True
