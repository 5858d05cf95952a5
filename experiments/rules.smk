# Experiment rules: one job per sweep point of the experiments listed in
# config["experiments"] (the helpers and the output layout: experiments/common.smk).
#
# Each job runs its command through `python -m hpc.workflow point ... -- COMMAND`, which
# turns a failing point into a record with status "failed" (and a missing GPU into
# "skipped") instead of stopping the workflow, so the report shows every point.
#
# MPI jobs run `{resources.mpi} -n {resources.tasks} python -m hpc ... --expect-ranks
# {resources.tasks}`: locally `mpi` is the virtualenv's mpiexec; the SLURM profile
# (slurm/config.yaml) sets it to `srun --mpi=pmi2`, so the same rule runs one P-rank MPI
# job inside a P-task allocation, and --expect-ranks turns a launch that started P
# independent 1-rank programs into an error instead of P silent single-rank results.
# Their `threads` are per rank (1 unless the experiment sets threads per rank): Snakemake
# exports threads as OMP_NUM_THREADS to every rank. Locally an MPI job therefore counts as
# `threads` cores for --cores, not P. SLURM's executor refuses an `mpi` job with one
# task, so one-rank points have rules of their own without `mpi`.
#
# GPU jobs request a GPU (resources gpu=1). Without one, the kernel benchmark records
# each GPU point as skipped itself (hpc bench kernels asks the backend registry), and a
# GPU training run is not started: `hpc.workflow point --needs-gpu` records it as skipped.
#
# Records are written to a staging file (`--stage`: R.jsonl.part, or the training run's
# own metrics.jsonl) and published as the declared output only when the point is over, so
# an interrupted run never leaves a half-written output behind.
#
# Training always passes --resume: the run's directory keeps checkpoints/last.pt, and
# only records.jsonl is a declared output (Snakemake deletes it before a rerun, never the
# checkpoints), so a training job killed mid-way continues from its last finished epoch
# when `snakemake` is started again; a fresh run starts from scratch (nothing to resume).
#
# Benchmark jobs take every core (threads: ALL_CORES) so that locally no two
# measurements share the machine; on SLURM the profile sets their CPUs per task.


wildcard_constraints:
    experiment=r"[A-Za-z0-9_.-]+",
    backend=r"[A-Za-z0-9_-]+",
    mode=r"[A-Za-z0-9_-]+",
    run=r"[A-Za-z0-9_.-]+",
    ranks=r"[1-9][0-9]*",


rule bench_kernels:
    input:
        experiment=experiment_file,
    output:
        records=results_path("kernels", "{experiment}", "{backend}.jsonl"),
    log:
        results_path("logs", "kernels", "{experiment}", "{backend}.log"),
    wildcard_constraints:
        backend=CPU_BACKEND_RE,
    params:
        backends=bench_backend_filter,
    threads: ALL_CORES
    resources:
        runtime=60,
        mem_mb=8000,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc.workflow point --output {output.records} --log {log}"
        " --stage {output.records}.part"
        " --kind kernel --name '{wildcards.experiment} {wildcards.backend}'"
        " --param experiment={wildcards.experiment} --param backend={wildcards.backend}"
        " -- python -m hpc bench kernels --experiment {input.experiment}"
        " --backends {params.backends} --output {output.records}.part"


rule bench_kernels_gpu:
    input:
        experiment=experiment_file,
    output:
        records=results_path("kernels", "{experiment}", "{backend}.jsonl"),
    log:
        results_path("logs", "kernels", "{experiment}", "{backend}.log"),
    wildcard_constraints:
        backend=GPU_BACKEND_RE,
    params:
        backends=bench_backend_filter,
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
        " --kind kernel --name '{wildcards.experiment} {wildcards.backend}'"
        " --param experiment={wildcards.experiment} --param backend={wildcards.backend}"
        " -- python -m hpc bench kernels --experiment {input.experiment}"
        " --backends {params.backends} --output {output.records}.part"


rule scale_single:
    input:
        experiment=experiment_file,
    output:
        records=results_path("scaling", "{experiment}", "{mode}", "n{ranks}.jsonl"),
    log:
        results_path("logs", "scaling", "{experiment}", "{mode}", "n{ranks}.log"),
    wildcard_constraints:
        ranks="1",
    params:
        workdir=scaling_workdir,
    threads: ALL_CORES
    resources:
        runtime=60,
        mem_mb=8000,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc.workflow point --output {output.records} --log {log}"
        " --stage {output.records}.part"
        " --kind scaling --name '{wildcards.experiment} {wildcards.mode} ranks=1'"
        " --param experiment={wildcards.experiment} --param mode={wildcards.mode}"
        " --param ranks=1"
        " -- python -m hpc scale --experiment {input.experiment} --mode {wildcards.mode}"
        " --workdir {params.workdir} --output {output.records}.part"


rule scale_mpi:
    input:
        experiment=experiment_file,
    output:
        records=results_path("scaling", "{experiment}", "{mode}", "n{ranks}.jsonl"),
    log:
        results_path("logs", "scaling", "{experiment}", "{mode}", "n{ranks}.log"),
    wildcard_constraints:
        ranks=r"[2-9]|[1-9][0-9]+",
    params:
        workdir=scaling_workdir,
    threads: mpi_threads
    resources:
        runtime=60,
        mem_mb=8000,
        mpi="mpiexec",
        tasks=lambda wildcards: int(wildcards.ranks),
        cpus_per_task=mpi_threads,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc.workflow point --output {output.records} --log {log}"
        " --stage {output.records}.part"
        " --kind scaling --name '{wildcards.experiment} {wildcards.mode} ranks={wildcards.ranks}'"
        " --param experiment={wildcards.experiment} --param mode={wildcards.mode}"
        " --param ranks={wildcards.ranks}"
        " -- {resources.mpi} -n {resources.tasks}"
        " python -m hpc scale --experiment {input.experiment} --mode {wildcards.mode}"
        " --workdir {params.workdir} --output {output.records}.part"
        " --expect-ranks {resources.tasks}"


rule train_cpu:
    input:
        experiment=experiment_file,
        data=dataset_file,
    output:
        records=results_path("training", "{experiment}", "cpu", "{run}", "records.jsonl"),
    log:
        results_path("logs", "training", "{experiment}", "cpu", "{run}.log"),
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.records),
    threads: ALL_CORES
    resources:
        runtime=120,
        mem_mb=8000,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc.workflow point --output {output.records} --log {log}"
        " --stage {params.out_dir}/metrics.jsonl"
        " --kind training --name '{wildcards.experiment} {wildcards.run}'"
        " --param experiment={wildcards.experiment} --param run={wildcards.run}"
        " --param device=cpu"
        " -- python -m hpc train run --data {input.data} --experiment {input.experiment}"
        " --run {wildcards.run} --out-dir {params.out_dir} --resume --no-progress"


rule train_gpu:
    input:
        experiment=experiment_file,
        data=dataset_file,
    output:
        records=results_path("training", "{experiment}", "gpu", "{run}", "records.jsonl"),
    log:
        results_path("logs", "training", "{experiment}", "gpu", "{run}.log"),
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.records),
    threads: ALL_CORES
    resources:
        runtime=120,
        mem_mb=16000,
        gpu=1,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc.workflow point --needs-gpu --output {output.records} --log {log}"
        " --stage {params.out_dir}/metrics.jsonl"
        " --kind training --name '{wildcards.experiment} {wildcards.run}'"
        " --param experiment={wildcards.experiment} --param run={wildcards.run}"
        " --param device=cuda"
        " -- python -m hpc train run --data {input.data} --experiment {input.experiment}"
        " --run {wildcards.run} --out-dir {params.out_dir} --resume --no-progress"


rule train_ddp:
    input:
        experiment=experiment_file,
        data=dataset_file,
    output:
        records=results_path("training", "{experiment}", "ddp", "{run}", "records.jsonl"),
    log:
        results_path("logs", "training", "{experiment}", "ddp", "{run}.log"),
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.records),
        gpu=training_gpu_flag,
    threads: mpi_threads
    resources:
        runtime=120,
        mem_mb=8000,
        mpi="mpiexec",
        tasks=training_ranks,
        cpus_per_task=mpi_threads,
        gpu=ddp_gpus,
        tasks_per_gpu=1,
    conda:
        "../environment.yml"
    shell:
        "python -m hpc.workflow point {params.gpu} --output {output.records} --log {log}"
        " --stage {params.out_dir}/metrics.jsonl"
        " --kind ddp --name '{wildcards.experiment} {wildcards.run}'"
        " --param experiment={wildcards.experiment} --param run={wildcards.run}"
        " --param ranks={resources.tasks}"
        " -- {resources.mpi} -n {resources.tasks}"
        " python -m hpc train run --ddp --data {input.data} --experiment {input.experiment}"
        " --run {wildcards.run} --out-dir {params.out_dir} --resume --no-progress"
        " --expect-ranks {resources.tasks}"
