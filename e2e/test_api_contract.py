"""The API contract: schemathesis fuzzes both live services against their OpenAPI documents.

The real ML service and the real Swift service run on loopback with a shared secret; both may read only a
temporary folder (a hard-linked copy of face_recognition_examples, ingested first so that photo, face, person
and job ids exist). Schemathesis then generates requests from `GET /openapi.json` of each service (the Swift
service's hand-written document, FastAPI's own for the ML service) — positive and negative data, every phase,
destructive endpoints included — and checks every response. The bar: no 5xx and no response that breaks its
document, over at least 1000 generated requests per service.

Left out, on purpose: `positive_data_acceptance` (requests the schema allows but the service rightly refuses: a
merge of unknown persons, a path that is a file, not a folder), `object_level_authorization` (one user, no
objects of others) and `max_response_time` (the ML service analyses real photos on a loaded machine).

Run: ml-service/.venv/bin/python -m pytest e2e/test_api_contract.py -q
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from reliability_log import record  # noqa: E402

EXAMPLES = harness.faces_dir() / "face_recognition_examples"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Per service: test cases per operation and phase, concurrent workers, and for the ML service (5 operations, where
# hypothesis runs out of new cases early) a time budget over which fuzzing repeats. Both reach >= 1000 requests
# in about a minute each on 2 cores; PHOTO_SORTER_CONTRACT_SCALE multiplies the examples and the budget.
SCALE = float(os.environ.get("PHOTO_SORTER_CONTRACT_SCALE", "1"))
RUNS = {
    "swift": ["--max-examples", str(max(1, round(30 * SCALE))), "--workers", "2"],
    "ml": ["--max-examples", str(max(1, round(100 * SCALE))), "--workers", "4", "--max-time", str(max(1, round(60 * SCALE)))],
}
MIN_REQUESTS = 1000
SEED = int(os.environ.get("PHOTO_SORTER_CONTRACT_SEED", "20261126"))
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,negative_data_rejection,missing_required_header,ignored_auth,use_after_free,"
          "ensure_resource_availability,unsupported_method,allow_header_conformance")
# Failure codes of a response that breaks its document: undocumented status, missing or wrong content type,
# missing header, body or header against its schema, unreadable body.
SCHEMA_CODES = {"ST103", "ST104", "ST105", "ST106", "ST107", "ST108", "ST109", "ST110"}

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"test photos not found at {EXAMPLES}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    photos = root / "photos"
    harness.copy_tree(EXAMPLES, photos)
    # Both services may read only the copy: whatever the fuzzer sends, nothing outside it is touched.
    s = harness.Stack(root / "stack", allowed_roots=[photos], ml_workers=1)
    try:
        status = s.wait_job(s.ingest(photos), 600)
        assert status["status"] == "COMPLETED", status
        yield s
    finally:
        s.stop()


def fuzz(schema_url: str, base_url: str, secret: str, report_dir: Path, run: list[str]) -> dict:
    """One schemathesis run; returns the figures from its HAR (every request sent) and JSON (failures) reports."""
    argv = [str(SCHEMATHESIS), "run", schema_url, "--url", base_url, "-H", f"X-Photo-Sorter-Secret: {secret}",
            "--checks", CHECKS, "--mode", "all", *run, "--seed", str(SEED),
            "--no-shrink", "--request-timeout", "60", "--continue-on-failure",
            "--suppress-health-check", "all", "--report", "json,har", "--report-dir", str(report_dir)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    (report_dir / "schemathesis.txt").write_text(proc.stdout + proc.stderr)
    har_files, json_files = glob.glob(str(report_dir / "har-*.json")), glob.glob(str(report_dir / "json-*.json"))
    assert har_files and json_files, f"schemathesis wrote no report (exit {proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    entries = json.loads(Path(har_files[0]).read_text())["log"]["entries"]
    report = json.loads(Path(json_files[0]).read_text())
    statuses = Counter(e["response"]["status"] for e in entries)
    failures = {f["code"]: f["count"] for f in report["failures"]}
    return {
        "requests": len(entries),
        "generated": report["test_cases"]["generated"],
        "server_errors": sum(n for status, n in statuses.items() if status >= 500),
        "schema_violations": sum(n for code, n in failures.items() if code in SCHEMA_CODES),
        "failures": failures,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errored": report["test_cases"]["errored"],
        "output": proc.stdout,
        "output_path": str(report_dir / "schemathesis.txt"),
    }


def check(service: str, figures: dict) -> None:
    ok = (figures["requests"] >= MIN_REQUESTS and figures["server_errors"] == 0 and figures["schema_violations"] == 0
          and not figures["failures"] and figures["errored"] == 0)
    record("contract", service,
           f"{figures['requests']} requests, {figures['server_errors']} 5xx, {figures['schema_violations']} schema violations",
           ok, requests=figures["requests"], generated=figures["generated"], server_errors=figures["server_errors"],
           schema_violations=figures["schema_violations"], failures=figures["failures"], statuses=figures["statuses"])
    assert ok, (f"{service}: {figures['requests']} requests, statuses {figures['statuses']}, failures by code "
                f"{figures['failures']}, {figures['errored']} errored; full output in {figures['output_path']}\n"
                f"{figures['output'][-15000:]}")


def test_swift_service_answers_every_fuzzed_request_as_its_document_says(stack, tmp_path):
    check("photo-sorter service", fuzz(f"{stack.base}/openapi.json", stack.base, stack.secret, tmp_path, RUNS["swift"]))


def test_ml_service_answers_every_fuzzed_request_as_its_document_says(stack, tmp_path):
    check("ML service", fuzz(f"{stack.ml_url}/openapi.json", stack.ml_url, stack.secret, tmp_path, RUNS["ml"]))
