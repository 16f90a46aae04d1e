# bayesmix developer tasks.  `make test` works from a fresh clone: it creates .venv
# with a Python >= 3.12 found on this machine and installs the package (editable) with
# its dev extras.  Override the interpreter with `make venv PYTHON=/path/to/python3.12`.

SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: venv venv-dev venv-docs demo gallery test lint test-slow test-jax test-all notebooks docs wheel-check bench bench-quick sbc clean distclean find-python FORCE

# Candidates, first that runs and is >= 3.12 (with venv/ensurepip) wins:
#   $(PYTHON), python3.13 / python3.12 / python3 on PATH (pyenv shims that are not
#   selected fail to run and are skipped), $(pyenv root)/versions/3.13*|3.12*, then
#   /root/.pyenv/versions/3.13*|3.12*.
define FIND_PYTHON
ok() { "$$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }; \
cands=(); \
[ -n "$(PYTHON)" ] && cands+=("$(PYTHON)"); \
for n in python3.13 python3.12 python3; do command -v "$$n" >/dev/null 2>&1 && cands+=("$$(command -v $$n)"); done; \
proot=$$(pyenv root 2>/dev/null || true); \
for root in "$$proot" /root/.pyenv; do \
  [ -n "$$root" ] || continue; \
  for v in 13 12; do for p in "$$root"/versions/3.$$v*/bin/python3.$$v; do [ -x "$$p" ] && cands+=("$$p"); done; done; \
done; \
found=; for c in "$${cands[@]}"; do if ok "$$c"; then found="$$c"; break; fi; done; \
if [ -z "$$found" ]; then \
  echo "error: bayesmix needs Python >= 3.12 (with the venv module) to build .venv, and none was found." >&2; \
  echo "       Looked for: \$$PYTHON, python3.13, python3.12, python3 on PATH," >&2; \
  echo "       \$$(pyenv root)/versions/3.1[23]*/bin/python3.1[23] and /root/.pyenv/versions/3.1[23]*." >&2; \
  echo "       Install Python 3.12+ or run: make venv PYTHON=/path/to/python3.12" >&2; \
  exit 1; \
fi
endef

# Rebuild the venv when its interpreter is missing or older than 3.12.
ifneq ($(shell $(PY) -c 'import sys; print(sys.version_info >= (3, 12))' 2>/dev/null),True)
$(STAMP): FORCE
endif

# `venv` installs what the package needs (enough for `make demo`); `venv-dev` adds the test
# tools. Keeping them apart keeps the first `make demo` short.
venv: $(STAMP)

venv-dev: $(DEV_STAMP)

$(STAMP): pyproject.toml
	@set -e; \
	if ! $(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then \
	  $(FIND_PYTHON); \
	  echo "Creating $(VENV) with $$found ($$("$$found" --version 2>&1))"; \
	  rm -rf $(VENV); \
	  "$$found" -m venv $(VENV); \
	fi; \
	$(PY) -m pip install --quiet -e .; \
	$(PY) -m bayesmix.inference.kernel; \
	rm -f $(DEV_STAMP); \
	touch $(STAMP); \
	echo "$(VENV) ready: $$($(PY) --version)"

$(DEV_STAMP): $(STAMP)
	@$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(DEV_STAMP)

$(DOCS_STAMP): $(DEV_STAMP)
	@$(PY) -m pip install --quiet -e ".[dev,docs]"
	@touch $(DOCS_STAMP)

venv-docs: $(DOCS_STAMP)

find-python:
	@$(FIND_PYTHON); echo "$$found"

demo: venv
	$(PY) -m bayesmix demo --out demo_output

# Every diagnostic picture (and check report) of the gallery fits (one per kind of response), in gallery/.
gallery: venv
	$(PY) -m bayesmix gallery --out gallery

test: venv-dev
	$(PY) -m pytest -m "not slow" -q -n 2 --dist loadfile $(PYTEST_ARGS)

# Style and correctness checks (ruff) and the import contract of the layered package
# (.importlinter: a layer imports only those below it; PyMC only in model/ and inference/).
lint: venv-dev
	$(VENV)/bin/ruff check bayesmix tests benchmarks case_studies docs/hooks .ci
	rm -rf .import_linter_cache
	$(VENV)/bin/lint-imports --no-cache

test-slow: venv-dev
	$(PY) -m pytest -m slow -q $(PYTEST_ARGS)

# The JAX samplers (numpyro, blackjax; in the dev extra) on CPU: the default-suite tests and
# the slow recovery tests against nutpie and lme4, plus the GPU benchmark's entry point.
test-jax: venv-dev
	$(PY) -m pytest -q tests/inference/test_jax_samplers.py tests/inference/test_benchmark_gpu.py $(PYTEST_ARGS)

test-all: venv-dev
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Build every case-study notebook from case_studies/src/ and execute it (outputs saved).
notebooks: venv-dev
	$(PY) case_studies/run.py

# The documentation site (mkdocs-material + mkdocstrings), warnings as errors.
docs: venv-docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# The package as users get it: build the sdist and the wheel from it (`python -m build`, into
# dist/), check the wheel holds the datasets and the licence files, install it into a throwaway
# virtual environment made with the Python found as for .venv (`make wheel-check PYTHON=...`
# picks another), and run the README's quick start with it from outside the checkout, on an
# empty compile cache (.ci/wheel_check.py): the first fit a new user sees. pip installs from
# the configured index with its cache; a failed install is retried once.
wheel-check:
	@set -e; $(FIND_PYTHON); \
	tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/bayesmix-wheel.XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	t0=$$(date +%s); \
	echo "wheel-check: $$found ($$("$$found" --version 2>&1)), throwaway environments in $$tmp"; \
	pipi() { "$$@" --quiet || { echo "pip install failed; retrying once" >&2; sleep 5; "$$@"; }; }; \
	"$$found" -m venv "$$tmp/build-env"; \
	pipi "$$tmp/build-env/bin/python" -m pip install build; \
	rm -rf dist; \
	"$$tmp/build-env/bin/python" -m build --outdir dist . >"$$tmp/build.log" 2>&1 \
	  || { cat "$$tmp/build.log"; exit 1; }; \
	whl=$$(ls dist/bayesmix-*.whl); echo "built $$(ls dist | tr '\n' ' ')"; \
	"$$tmp/build-env/bin/python" .ci/wheel_check.py inspect "$$whl"; \
	t1=$$(date +%s); \
	"$$found" -m venv "$$tmp/env"; \
	pipi "$$tmp/env/bin/python" -m pip install "$$whl"; \
	t2=$$(date +%s); \
	(cd "$$tmp" && MPLBACKEND=Agg PYTENSOR_FLAGS="base_compiledir=$$tmp/pytensor" \
	  "$$tmp/env/bin/python" "$(CURDIR)/.ci/wheel_check.py" quickstart "$(CURDIR)/README.md" "$(CURDIR)"); \
	t3=$$(date +%s); \
	echo "wheel-check passed: build $$((t1 - t0)) s, install $$((t2 - t1)) s, quick start $$((t3 - t2)) s, total $$((t3 - t0)) s"

# Benchmarks against bambi (docs/benchmarks.md). bambi gets its own virtual environment,
# benchmarks/.bambi-venv, created on first use. `make bench BENCH_ARGS="--no-bambi"` etc.
BENCH_ARGS ?=

bench: venv
	$(PY) -m benchmarks $(BENCH_ARGS)

bench-quick: venv
	$(PY) -m benchmarks --quick $(BENCH_ARGS)

# Simulation-based calibration (docs/validation.md): the full run is hours on 2 cores;
# e.g. make sbc SBC_ARGS="--families gaussian poisson --n-sims 200"
SBC_ARGS ?= --families gaussian bernoulli poisson negativebinomial zero_inflated_poisson --designs intercept slopes crossed nested --n-sims 200
sbc: venv
	$(PY) -m bayesmix.validation.sbc $(SBC_ARGS) --out sbc_results

clean:
	rm -rf demo_output gallery build dist site .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

FORCE:
