# Dataset stage: NIfTI volumes -> one HDF5 slice dataset (hpc.data; formats and inputs in
# datasets/README.md). The Snakefile includes this file after validating `config`.
#
# Paths come from config["dataset"]: `output` is the HDF5 file (what every training job
# reads through dataset_file() in experiments/common.smk), `records` the JSONL build record
# for the report; both default to places under results_dir. The job reads the merged,
# validated config of this run (every --configfile and --config override), written by
# merged_config_file("dataset") with only results_dir and the dataset section in it. As a
# `params:` entry whose name is the hash of that section, it reruns the job exactly when
# a dataset option changes: editing the experiments list or the report options does not
# rebuild the dataset (and so does not retrain). Bad inputs are reported in the log and
# skipped; the job fails only when nothing converts or dataset.strict is true.

from pathlib import Path as _DatasetPath

DATASET_CODE = sorted(str(p) for p in _DatasetPath("hpc/data").glob("*.py"))
DATASET_RAW = [] if config["dataset"]["input"] == "sample" else [config["dataset"]["input"]]
DATASET_RECORDS = config["dataset"]["records"] or results_path("records", "dataset.jsonl")


rule build_dataset:
    input:
        code=DATASET_CODE,
        raw=DATASET_RAW,
    output:
        h5=config["dataset"]["output"],
        records=DATASET_RECORDS,
    log:
        results_path("logs", "build_dataset.log"),
    params:
        config=merged_config_file("dataset"),
    threads: 2  # virtual subjects of the sample set are made in worker processes
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc data build --config {params.config} --output {output.h5}"
        " --records {output.records} --no-progress > {log} 2>&1"
