#!/usr/bin/env python3
"""The floor under `photo-sorter sort`'s wall time: the ML pipeline alone, without either service (offline experiment).

Runs the ML service's own per-photo pipeline (`pipeline.analyse_in_worker`) in the service's own worker pool
(`WorkerPool`'s executor: one spawned process per core, models loaded by the pool initializer) over a list of photos,
and nothing else: no Swift service, no HTTP, no database, no identity, no callbacks. `sort` does all of that on top,
so its wall time cannot be shorter than this script's, measured from outside (interpreter start and imports included):

    /usr/bin/time -f %e ml-service/.venv/bin/python bench/throughput/pipeline_floor.py --list FILE

`whole_process_insightface.py --floor` runs it alongside `sort` and the insightface loop, in the same rounds.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", required=True, help="file with one photo path per line")
    args = ap.parse_args()
    started = time.perf_counter()
    from photo_sorter_ml.config import Settings
    from photo_sorter_ml.pipeline import analyse_in_worker
    from photo_sorter_ml.worker_pool import WorkerPool

    settings = Settings.from_env()
    paths = [line for line in open(args.list, encoding="utf-8").read().splitlines() if line]
    pool = WorkerPool.for_settings(settings)  # the service's own executor: spawn, initializer, one BLAS thread
    pool.start()
    with pool.executor:
        results = list(pool.executor.map(analyse_in_worker, paths, paths, chunksize=1))
    faces = sum(len(r.get("detections") or []) for r in results)
    failed = sum(1 for r in results if not r.get("ok"))
    print(json.dumps({"photos": len(paths), "faces": faces, "failed": failed, "workers": settings.workers,
                      "seconds_inside": round(time.perf_counter() - started, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
