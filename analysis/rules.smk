# Analysis rules: every record file of the workflow -> one tidy table and the HTML report.
#
#   R/records/all.csv, R/records/all.parquet   every record, one row each (hpc report aggregate)
#   R/report.html                               self-contained report (hpc report build)
#   R/figures/*.png|svg                         the report's figures, also in `snakemake --report`
#   R/records/history-entry.csv                 this run's row in the run history (hpc runs add):
#                                               config["history_dir"] keeps every run's records
#
# Inputs come from all_record_files() (experiments/common.smk): one file per sweep point,
# including points that failed or were skipped (those files hold status failed/skipped
# records), so the report always lists every point. Both jobs are light (seconds), so a
# SLURM run does them on the submitting host instead of queueing them.
#
# The HTML template is hpc/analysis/templates/report.html.j2 (package data) (an input, so editing it rebuilds
# the report).


localrules:
    aggregate,
    report,
    history,


rule aggregate:
    input:
        records=lambda wildcards: all_record_files(),
    output:
        csv=results_path("records", "all.csv"),
        parquet=results_path("records", "all.parquet"),
    log:
        results_path("logs", "analysis", "aggregate.log"),
    conda:
        "../environment.yml"
    shell:
        "python -m hpc report aggregate --records {input.records:q}"
        " --csv {output.csv:q} --parquet {output.parquet:q} > {log:q} 2>&1"


rule report:
    input:
        records=lambda wildcards: all_record_files(),
        table=rules.aggregate.output.csv,
        template="hpc/analysis/templates/report.html.j2",
    output:
        html=report(
            results_path("report.html"),
            caption="report/report.rst",
            category="Report",
        ),
        figures=report(
            directory(results_path("figures")),
            patterns=["{name}.png"],
            caption="report/figures.rst",
            category="Figures",
        ),
    log:
        results_path("logs", "analysis", "report.log"),
    conda:
        "../environment.yml"
    shell:
        "python -m hpc report build --records {input.records:q}"
        " --template {input.template:q} --output {output.html:q}"
        " --figures-dir {output.figures:q} > {log:q} 2>&1"


rule history:
    input:
        report=rules.report.output.html,
        table=rules.aggregate.output.csv,
    output:
        entry=results_path("records", "history-entry.csv"),
    params:
        results=results_root_of_entry,
        history=config.get("history_dir", "runs"),
    log:
        results_path("logs", "analysis", "history.log"),
    conda:
        "../environment.yml"
    shell:
        "python -m hpc runs add {params.results:q} --history {params.history:q}"
        " --entry {output.entry:q} > {log:q} 2>&1"
