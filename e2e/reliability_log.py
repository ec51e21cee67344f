"""Rows of the bench/RESULTS.md "Reliability" table, written by the reliability tests as they run.

Each call appends one JSON line to `<dir>/<suite>.jsonl`, where `<dir>` is `PHOTO_SORTER_RELIABILITY_OUT`
(set by bench/reliability/reliability.py) or `e2e/out/reliability/`. The test asserts its own outcome;
this log only records what happened, so the table is made from the same runs that passed.

Suites: "bad-input" (one row per kind of bad input), "faults" (one row per crash/fault scenario),
"contract" (one row per service fuzzed by schemathesis), "security" (one row per rule), "load".
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def out_dir() -> Path:
    env = os.environ.get("PHOTO_SORTER_RELIABILITY_OUT")
    d = Path(env) if env else REPO / "e2e" / "out" / "reliability"
    d.mkdir(parents=True, exist_ok=True)
    return d


def record(suite: str, case: str, outcome: str, ok: bool, **details) -> None:
    """Appends one row: `case` names what was tried, `outcome` says what happened in words, `details` holds
    figures (counts, statuses, seconds) as JSON-serialisable values."""
    row = {"suite": suite, "case": case, "outcome": outcome, "ok": bool(ok), "details": details,
           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(out_dir() / f"{suite}.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")
