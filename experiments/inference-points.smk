# Helpers of the inference rules (experiments/inference.smk): which jobs an `inference`
# experiment has and where their records go. Included by the Snakefile before the rules.
#
#   R/inference/<experiment>/<model>/<backend>.jsonl   one job per (model, backend):
#       inference_batch records (one per dtype x host memory x batch size) and
#       inference_sweep records (cold start, fits, 90 %-of-peak batch)
#
# Backend specs may carry a style (opencl:tiled); in file names the colon becomes a dash.

# Inference backends that need a CUDA GPU: their jobs request one (resources gpu=1).
INFERENCE_GPU_BACKENDS = ("torch-cuda",)


def inference_backend_slug(spec: str) -> str:
    """opencl:tiled -> opencl-tiled (what the {backend} wildcard and file name hold)."""
    return str(spec).replace(":", "-")


def inference_points() -> list:
    """(experiment, model, backend slug) of every inference experiment: one job each."""
    return [(spec["name"], model, inference_backend_slug(backend))
            for spec in experiments_of("inference")
            for model in spec.get("models") or []
            for backend in spec.get("backends") or []]


def inference_backend_spec(wildcards) -> str:
    """The backend spec (name[:style]) of the experiment whose slug is {backend}."""
    for backend in EXPERIMENTS[wildcards.experiment].get("backends") or []:
        if inference_backend_slug(backend) == wildcards.backend:
            return str(backend)
    raise ValueError(f"experiment {wildcards.experiment!r} has no inference backend {wildcards.backend!r}")


def inference_record_files() -> list:
    return [results_path("inference", exp, model, f"{backend}.jsonl")
            for exp, model, backend in inference_points()]


INFERENCE_GPU_RE = f"(?:{_alternation(INFERENCE_GPU_BACKENDS)})"
INFERENCE_CPU_RE = f"(?!(?:{_alternation(INFERENCE_GPU_BACKENDS)})(?![A-Za-z0-9_-]))[A-Za-z0-9_-]+"
