# Compression rules: one job trains the experiment's base network, or loads the training
# stage's checkpoint when the experiment sets base.from_training (model.pt next to its
# record), then one job per run compresses it (python -m hpc compress run ...). Helpers and
# the output layout: experiments/compression-common.smk.
#
# Like every experiment job, they run through `python -m hpc.workflow point`, so a failing
# run becomes a record with status "failed" (kind "compression") and the workflow goes on.
# A run whose base job failed finds no model.pt and is recorded as failed too. Training and
# evaluation jobs declare the experiment's torch threads (1 in the laptop experiment), so on
# 2 cores two of them run side by side; the clustered-convolution benchmark takes every core
# and so measures alone (compression_threads in compression-common.smk).


rule compress_base:
    input:
        unpack(compression_base_inputs),
    output:
        records=results_path("compression", "{experiment}", "base", "records.jsonl"),
    log:
        results_path("logs", "compression", "{experiment}", "base.log"),
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.records),
        source=compression_base_source_flag,
    threads: compression_threads
    resources:
        runtime=60,
        mem_mb=8000,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc.workflow point --output {output.records} --log {log}"
        " --stage {output.records}.part"
        " --kind compression --name '{wildcards.experiment} base'"
        " --param experiment={wildcards.experiment} --param run=base"
        " -- python -m hpc compress base --experiment {input.experiment} --data {input.data}"
        " --out-dir {params.out_dir} --output {output.records}.part {params.source}"


rule compress_run:
    input:
        unpack(compression_run_inputs),
    output:
        records=results_path("compression", "{experiment}", "{run}", "records.jsonl"),
    log:
        results_path("logs", "compression", "{experiment}", "{run}.log"),
    wildcard_constraints:
        run=r"(?!base/)[A-Za-z0-9_.-]+",
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.records),
        base_dir=lambda wildcards: results_path("compression", wildcards.experiment, "base"),
        data=lambda wildcards, input: input.get("data", dataset_file()),
        method=compression_method,
    threads: compression_threads
    resources:
        runtime=120,
        mem_mb=8000,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc.workflow point --output {output.records} --log {log}"
        " --stage {output.records}.part"
        " --kind compression --name '{wildcards.experiment} {wildcards.run}'"
        " --param experiment={wildcards.experiment} --param run={wildcards.run}"
        " --param method={params.method}"
        " -- python -m hpc compress run --experiment {input.experiment} --run {wildcards.run}"
        " --data {params.data} --base-dir {params.base_dir} --out-dir {params.out_dir}"
        " --output {output.records}.part"
