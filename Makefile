# Set-up lives here: `make demo` and `make test` create .venv and install everything.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench data browser clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,text,image,report,web,ray]'
	touch $(STAMP)

# Real labeled data from Debian (skipped with a message where apt is missing).
data:
	@if [ -d /usr/share/datasets/fashion-mnist ] && [ -f /usr/share/wordnet/data.noun ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq || true) && apt-get install -y -qq dataset-fashion-mnist wordnet-base >/dev/null \
		|| echo "note: could not install dataset-fashion-mnist/wordnet-base; those benchmarks and tests will skip"; \
	else echo "note: no apt-get; Fashion-MNIST and WordNet benchmarks and tests will skip"; fi

# Headless Chromium for the report test (skipped with a reason where it cannot be installed).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq || true) && apt-get install -y -qq chromium >/dev/null || echo "note: could not install chromium; the browser test will skip"; \
	else echo "note: no apt-get; the headless-Chromium report test will skip"; fi

demo: $(STAMP) data
	$(BIN)/python -m labelseed.demo

test: $(STAMP) data browser
	$(BIN)/python -m pytest -q

# Benchmarks need the bench extra (ANN libraries, torch 2.13.0 CPU, MiniLM); see bench/README.md.
bench: $(STAMP) data
	$(BIN)/pip install -q -e '.[bench,text,image,report]'
	$(BIN)/python bench/embed_wordnet.py --per-class 600
	$(BIN)/python bench/embed_wordnet.py --per-class 100000
	$(BIN)/python bench/ann_choice.py --dataset fashion
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/matched.py
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/honesty.py --method spreading --out bench/results/honesty.json
	$(BIN)/python bench/honesty.py --out bench/results/honesty_ensemble.json
	$(BIN)/python bench/label_efficiency.py
	$(BIN)/python bench/fuzz.py
	$(BIN)/python bench/select_coverage.py
	$(BIN)/python bench/select_certify.py
	$(BIN)/python bench/select_big.py --strategies kmeans stratified facility
	$(BIN)/python bench/active_learning.py
	$(BIN)/python bench/embed_throughput.py
	$(BIN)/python bench/report_big.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
