# Two entry points (see README.md):
#   make run   - set up everything, then run the whole workflow locally (snakemake --cores $(CORES))
#   make test  - set up everything, then run the test suite
# Set-up is idempotent: a virtual environment in $(VENV) and, when run as root on Debian,
# the system packages the suite needs (PoCL OpenCL runtime, SLURM + munge for the local
# cluster tests, Chromium for the report screenshot test).

VENV ?= .venv
CORES ?= 2
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
APT_PACKAGES := pocl-opencl-icd ocl-icd-libopencl1 clinfo slurm-wlm munge iproute2 chromium

.PHONY: run test setup system-packages lint clean-results gpu-check

run: setup
	$(VENV)/bin/snakemake --cores $(CORES) --rerun-incomplete

test: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/snakemake --lint

# The GPU path in one run on a machine with one NVIDIA GPU (< 8 min on an H100/H200): GPU
# tests, experiments/kernels-gpu.yaml, one AMP + channels_last training run, and
# docs/benchmarks/gpu-<date>.md. Stops at once, before any set-up, where there is no GPU.
gpu-check:
	@command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 || { \
	  echo "gpu-check: no NVIDIA GPU found (nvidia-smi missing or failing); run it on a node with one NVIDIA GPU, e.g. srun --gres=gpu:1 --time=15 make gpu-check" >&2; exit 2; }
	$(MAKE) setup
	$(PY) -m hpc gpu-check

setup: system-packages $(VENV)/.installed

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "note: system packages missing ($$missing) and not root/Debian: OpenCL, SLURM or browser tests will skip"; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

clean-results:
	rm -rf results .snakemake
