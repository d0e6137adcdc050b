"""Fuzzing through the real entry point (issue 12): generated labels CSVs, .npy pools and Label
Studio exports; 0 tracebacks, 0 exits other than 0/2, 0 successes that contradict their input.
2,000+ cases here (LABELSEED_FUZZ_SCALE multiplies them); bench/fuzz.py runs 10,000."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from conftest import run_cli
from fuzzing import (VALID_LABELS, autolabel_case, import_case, label_csv_bytes, label_studio_json, npy_array,
                     valid_pool)

SCALE = float(os.environ.get("LABELSEED_FUZZ_SCALE", "1"))
COMMON = dict(deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzzproj")
    (d / "pool.csv").write_text("id,text\n" + "".join(f"t{i},word{i % 3} thing {i}\n" for i in range(12)))
    assert run_cli("init", str(d / "proj"), "--data", str(d / "pool.csv"), "--text-column", "text").returncode == 0
    return d / "proj"


@settings(max_examples=int(800 * SCALE), **COMMON)
@given(labels=label_csv_bytes())
def test_fuzzed_labels_files(tmp_path, labels):
    o = autolabel_case(tmp_path, valid_pool(), labels, "labels")
    assert not o.failure, o.failure


@settings(max_examples=int(500 * SCALE), **COMMON)
@given(X=npy_array())
def test_fuzzed_embeddings(tmp_path, X):
    o = autolabel_case(tmp_path, X, VALID_LABELS.encode(), f"npy {X.dtype} {X.shape}")
    assert not o.failure, o.failure


@settings(max_examples=int(500 * SCALE), **COMMON)
@given(data=label_studio_json())
def test_fuzzed_label_studio_imports(project, data):
    o = import_case(project, data, ".json", "label studio")
    assert not o.failure, o.failure


@settings(max_examples=int(300 * SCALE), **COMMON)
@given(data=label_csv_bytes(id_prefix="t"))
def test_fuzzed_csv_imports(project, data):
    o = import_case(project, data, ".csv", "csv import")
    assert not o.failure, o.failure
