#!/usr/bin/env python3
"""The ML service's own pipeline (photo_sorter_ml.pipeline) in its process pool, as the service runs it:
one model copy per worker process, downscaled detection, full-resolution alignment.

    ml-service/.venv/bin/python ours.py OUT.json WORKERS PHOTO...
"""
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "ml-service"))


def main(out, workers, paths):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1" if workers > 1 else str(os.cpu_count()))
    import dlib

    from photo_sorter_ml.config import Settings
    from photo_sorter_ml.pipeline import PipelineParams, analyse_in_worker, init_worker, params_dict, ping

    params = PipelineParams.from_settings(Settings.from_env())
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker,
                             initargs=(params_dict(params),)) as pool:
        for f in [pool.submit(ping) for _ in range(workers)]:
            f.result()  # models loaded before the clock starts (the service does this at start-up)
        t0 = time.perf_counter()
        results = list(pool.map(analyse_in_worker, paths, paths))
        wall = time.perf_counter() - t0
    rows = []
    for path, r in zip(paths, results):
        t = r.get("timings", {})
        rows.append({"path": path, "faces": len(r.get("detections") or []), "ok": r.get("ok"),
                     **{k: t.get(k, 0.0) for k in ("decode_ms", "detect_ms", "embed_ms", "total_ms")}})
    info = {"dlib": dlib.__version__, "blas": bool(getattr(dlib, "DLIB_USE_BLAS", False)),
            "avx": bool(getattr(dlib, "USE_AVX_INSTRUCTIONS", False)), "processes": workers,
            "params": params_dict(params)}
    with open(out, "w") as f:
        json.dump({"wall_s": wall, "rows": rows, "info": info}, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
