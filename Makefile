# Set-up lives here: `make demo` and `make test` create .venv and install everything.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench data clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

# Real labeled data from Debian (skipped with a message where apt is missing).
data:
	@if [ -d /usr/share/datasets/fashion-mnist ] && [ -f /usr/share/wordnet/data.noun ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq || true) && apt-get install -y -qq dataset-fashion-mnist wordnet-base >/dev/null \
		|| echo "note: could not install dataset-fashion-mnist/wordnet-base; those benchmarks and tests will skip"; \
	else echo "note: no apt-get; Fashion-MNIST and WordNet benchmarks and tests will skip"; fi

demo: $(STAMP) data
	$(BIN)/python -m labelseed.demo

test: $(STAMP) data
	$(BIN)/python -m pytest -q

bench: $(STAMP) data
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
