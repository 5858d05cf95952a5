# Inference rules: AlexNet across batch sizes, one job per (model, backend) of every
# `inference` experiment in config["experiments"] (helpers: experiments/inference-points.smk).
#
# Each job runs `python -m hpc bench inference` through `python -m hpc.workflow point`, like
# the rules in experiments/rules.smk: the records go to a staging file published when the
# job is over, and a job that fails as a whole becomes an `inference_sweep` record with
# status "failed". Inside a job, a batch above the memory budget, a backend that cannot
# run here (torch-cuda without a GPU, the OpenCL engine when absent) and pinned memory
# without CUDA are recorded as skipped by `hpc bench inference` itself.
#
# Benchmark jobs take every core (threads: ALL_CORES); GPU backends request a GPU.


wildcard_constraints:
    model=r"[A-Za-z0-9_-]+",


rule bench_inference:
    input:
        experiment=experiment_file,
    output:
        records=results_path("inference", "{experiment}", "{model}", "{backend}.jsonl"),
    log:
        results_path("logs", "inference", "{experiment}", "{model}", "{backend}.log"),
    wildcard_constraints:
        backend=INFERENCE_CPU_RE,
    params:
        backend=inference_backend_spec,
    threads: ALL_CORES
    resources:
        runtime=60,
        mem_mb=8000,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc.workflow point --output {output.records} --log {log}"
        " --stage {output.records}.part"
        " --kind inference_sweep --name '{wildcards.experiment} {wildcards.model} {wildcards.backend}'"
        " --param experiment={wildcards.experiment} --param model={wildcards.model}"
        " --param backend={params.backend}"
        " -- python -m hpc bench inference --experiment {input.experiment}"
        " --models {wildcards.model} --backends {params.backend} --output {output.records}.part"


rule bench_inference_gpu:
    input:
        experiment=experiment_file,
    output:
        records=results_path("inference", "{experiment}", "{model}", "{backend}.jsonl"),
    log:
        results_path("logs", "inference", "{experiment}", "{model}", "{backend}.log"),
    wildcard_constraints:
        backend=INFERENCE_GPU_RE,
    params:
        backend=inference_backend_spec,
    threads: ALL_CORES
    resources:
        runtime=60,
        mem_mb=16000,
        gpu=1,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc.workflow point --output {output.records} --log {log}"
        " --stage {output.records}.part"
        " --kind inference_sweep --name '{wildcards.experiment} {wildcards.model} {wildcards.backend}'"
        " --param experiment={wildcards.experiment} --param model={wildcards.model}"
        " --param backend={params.backend}"
        " -- python -m hpc bench inference --experiment {input.experiment}"
        " --models {wildcards.model} --backends {params.backend} --output {output.records}.part"
