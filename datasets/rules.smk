# Dataset stage: NIfTI volumes -> one HDF5 slice dataset (hpc.data; formats and inputs in
# datasets/README.md). The Snakefile includes this file after validating `config`.
#
# Paths come from config["dataset"]: `output` is the HDF5 file (what every training job
# reads through dataset_file() in experiments/common.smk), `records` the JSONL build record
# for the report. The job reads the same config file Snakemake was given, so the CLI and
# the workflow agree on every dataset option. Bad inputs are reported in the log and
# skipped; the job fails only when nothing converts or dataset.strict is true.

from pathlib import Path as _DatasetPath

DATASET_CONFIG_FILE = workflow.configfiles[-1] if workflow.configfiles else "config/config.yaml"
DATASET_CODE = sorted(str(p) for p in _DatasetPath("hpc/data").glob("*.py"))
DATASET_RAW = [] if config["dataset"]["input"] == "sample" else [config["dataset"]["input"]]
DATASET_RECORDS = config["dataset"]["records"] or str(
    _DatasetPath(config["results_dir"], "records", "dataset.jsonl"))


rule build_dataset:
    input:
        config=DATASET_CONFIG_FILE,
        code=DATASET_CODE,
        raw=DATASET_RAW,
    output:
        h5=config["dataset"]["output"],
        records=DATASET_RECORDS,
    log:
        str(_DatasetPath(config["results_dir"], "logs", "build_dataset.log")),
    threads: 2  # virtual subjects of the sample set are made in worker processes
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc data build --config {input.config} --output {output.h5}"
        " --records {output.records} --no-progress > {log} 2>&1"
