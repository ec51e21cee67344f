"""What both single-process baselines (`baseline_dlib.py`, `baseline_insightface.py`) read and write: the photo list
and the result line."""
from __future__ import annotations

import json


def read_list(path: str) -> list[str]:
    """The photo paths of a file with one path per line (blank lines skipped)."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def report(out: dict, json_path: str | None) -> None:
    """Prints the result as one JSON line (what the callers parse) and writes it to `json_path` too when given."""
    print(json.dumps(out))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(out, f, indent=2)
