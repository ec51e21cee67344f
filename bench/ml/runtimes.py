#!/usr/bin/env python3
"""OpenVINO against onnxruntime on the ArcFace model's two ONNX files: speed, and whether the answers agree.

    flock /tmp/photo-sorter-bench.lock ml-service/.venv/bin/python bench/ml/runtimes.py [--rounds 7] [--calls 40] \
        [--skip-speed] [--skip-identity] [--pool ROUNDS] [--throughput ROUNDS] [--binary B] [--json OUT]

1. Speed: ms per call of each model (w600k_mbf on one aligned face; SCRFD-500M on an lfw_small photo at 256 x 256,
   the size the pipeline gives it, and at 640 x 640), per engine, 1 and 2 threads, real inputs, each configuration
   in its own process. The configurations take turns within each round, so a busy neighbour slows them alike; the
   median round counts.
2. Identity on every photo of lfw_small (and the group photos of dlib_faces and face_recognition_examples, for
   detection): the service's own pipeline (`pipeline.analyse`, thumbnails off) with both models on OpenVINO, then
   on onnxruntime. Faces are paired by IoU; reported: faces found by each, unpaired faces, the largest box corner
   difference in pixels, and the cosine of paired embeddings (end to end: each engine's own landmarks) and of the
   embedder alone (both on the onnxruntime landmarks: the `mixed` runtime against `onnxruntime`).
3. Throughput (--throughput N): `photo-sorter sort ../shared/testdata/faces` on a fresh SQLite database, once per
   PHOTO_SORTER_ML_RUNTIME value per round, their order reversed every other round, N rounds; photos/s = processed /
   the summary's wall seconds (as bench/throughput/throughput.py counts them), the median round per runtime.
4. Pool (--pool N): the same photos through the ML service's pipeline in its process pool alone (ours.py), per
   runtime, alternating, N rounds: photos/s and ms per photo in detection and embedding, without `sort` around it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "ml-service"))

from insightface.utils.face_align import norm_crop  # noqa: E402

from photo_sorter_ml.config import Settings  # noqa: E402
from photo_sorter_ml.decode import decode  # noqa: E402
from photo_sorter_ml.models import load_models, unit_rows, verify_weights  # noqa: E402
from photo_sorter_ml.models.runtimes import ENGINES, RUNTIMES, engine_version, inference_session  # noqa: E402
from photo_sorter_ml.pipeline import PipelineParams, analyse  # noqa: E402
from photo_sorter_ml.xmp_regions import iou  # noqa: E402

FACES = Path(os.environ.get("PHOTO_SORTER_FACES_DIR", ROOT.parent / "shared" / "testdata" / "faces"))
IMAGE_EXT = {".jpg", ".jpeg", ".png"}


def images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXT and "_noface" not in p.parts)


def speed_inputs() -> dict[str, tuple[str, np.ndarray]]:
    """Real inputs: the first lfw_small face aligned for w600k_mbf; that photo for SCRFD at 256² and 640²."""
    import cv2

    rgb = decode(str(images(FACES / "lfw_small")[0]), Settings.max_pixels).rgb
    face = load_models("arcface", runtime="onnxruntime").detector.detect(rgb, 0)[0]
    crop = norm_crop(rgb, face.landmarks, image_size=112)
    inputs = {"w600k_mbf (1 face)": ("embedding", (crop.transpose(2, 0, 1)[None].astype(np.float32) - 127.5) / 127.5)}
    for side in (256, 640):
        blob = cv2.dnn.blobFromImage(cv2.resize(rgb[:, :, ::-1], (side, side)), 1 / 128, (side, side),
                                     (127.5, 127.5, 127.5), swapRB=True)
        inputs[f"SCRFD-500M at {side}²"] = ("detector", blob)
    return inputs


def timer(conn, model_file: str, runtime: str, threads: int, blob: np.ndarray, calls: int) -> None:
    """One configuration in its own process (no thread pools shared with the others): times `calls` runs per
    request from the parent."""
    session = inference_session(model_file, runtime, threads)
    feed = {session.get_inputs()[0].name: blob}
    while conn.recv():
        t0 = time.perf_counter()
        for _ in range(calls):
            session.run(None, feed)
        conn.send((time.perf_counter() - t0) * 1000 / calls)


def speed(rounds: int, calls: int) -> list[dict]:
    import multiprocessing

    files = {f.role: f.path for f in verify_weights("arcface")}
    inputs = speed_inputs()
    configs = [(m, rt, th) for m in inputs for th in (1, 2) for rt in ENGINES]
    ctx = multiprocessing.get_context("spawn")
    children = {}
    for c in configs:
        m, rt, th = c
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=timer, args=(child, files[inputs[m][0]], rt, th, inputs[m][1], calls))
        proc.start()
        children[c] = (parent, proc)
    times = {c: [] for c in configs}
    for r in range(rounds + 1):  # round 0 warms up
        for c in configs:
            conn = children[c][0]
            conn.send(True)
            ms = conn.recv()
            if r:
                times[c].append(ms)
            time.sleep(0.05)  # let spinning worker threads settle before the next configuration
    for conn, proc in children.values():
        conn.send(False)
        proc.join()
    rows = []
    for m, rt, th in configs:
        rows.append({"model": m, "runtime": rt, "threads": th, "ms": statistics.median(times[(m, rt, th)]),
                     "rounds_ms": times[(m, rt, th)]})
        print(f"{m:22s} {rt:12s} threads {th}: {rows[-1]['ms']:6.2f} ms", file=sys.stderr, flush=True)
    return rows


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def identity(sets: list[str]) -> dict:
    params = PipelineParams.from_settings(Settings())
    params.thumbnail_size = 0
    models = {rt: load_models("arcface", runtime=rt) for rt in ENGINES}  # each engine for both models
    out = {}
    for name in sets:
        paths = images(FACES / name)
        found = {rt: 0 for rt in ENGINES}
        unpaired, corner, cos_e2e, cos_emb, looks_differ = [], [], [], [], []
        for path in paths:
            res = {rt: analyse(str(path), path.name, models=models[rt], params=params) for rt in ENGINES}
            ref, other = res["onnxruntime"], res["openvino"]
            for rt in ENGINES:
                found[rt] += len(res[rt]["detections"])
            if (ref["quarter_turns"], ref["detect"]["look"]) != (other["quarter_turns"], other["detect"]["look"]):
                looks_differ.append(str(path))
            used = set()
            for a in ref["detections"]:
                best = max(((iou(a["bbox"], b["bbox"]), j) for j, b in enumerate(other["detections"])
                            if j not in used), default=(0.0, None))
                if best[0] < 0.5:
                    unpaired.append(str(path))
                    continue
                used.add(best[1])
                b = other["detections"][best[1]]
                corner.append(max(abs(x - y) for x, y in zip(a["bbox"], b["bbox"])))
                va, vb = (np.frombuffer(d["embedding"], "<f4") for d in (a, b))
                cos_e2e.append(float(va @ vb))
            unpaired += [str(path)] * (len(other["detections"]) - len(used))
            if name == "lfw_small":  # the embedder alone: both runtimes on the onnxruntime detector's faces
                img = decode(str(path), params.max_pixels).rgb
                faces = models["onnxruntime"].detector.detect(img, 0)
                if faces:
                    e = {rt: unit_rows(models[rt].embedder.embed(img, faces))[0] for rt in ENGINES}
                    cos_emb += [float(x) for x in np.sum(e["onnxruntime"] * e["openvino"], axis=1)]
        out[name] = {
            "photos": len(paths), "faces_found": found, "unpaired_faces": len(unpaired),
            "unpaired_photos": sorted(set(unpaired)), "looks_differ": looks_differ,
            "box_corner_px": {"max": max(corner), "p99": pct(corner, 99), "median": pct(corner, 50),
                              "share_within_1px": float(np.mean(np.array(corner) <= 1))},
            "cosine_end_to_end": {"n": len(cos_e2e), "min": min(cos_e2e), "p1": pct(cos_e2e, 1),
                                  "median": pct(cos_e2e, 50)},
        }
        if cos_emb:
            out[name]["cosine_embedder"] = {"n": len(cos_emb), "min": min(cos_emb), "p1": pct(cos_emb, 1),
                                            "median": pct(cos_emb, 50)}
        print(name, json.dumps(out[name], indent=1), file=sys.stderr, flush=True)
    return out


def throughput(rounds: int, binary: Path) -> dict:
    import tempfile

    sys.path.insert(0, str(ROOT / "e2e"))
    import harness

    runs = {rt: [] for rt in RUNTIMES}
    with tempfile.TemporaryDirectory(prefix="runtimes-") as tmp:
        for r in range(rounds):
            for rt in (list(RUNTIMES) if r % 2 == 0 else list(RUNTIMES)[::-1]):
                work = Path(tmp) / f"{rt}-{r}"
                work.mkdir()
                rc, summary, outer = harness.run_sort(binary, FACES, str(work / "db.sqlite"), work / "summary.json",
                                                      work / "sort.log", PHOTO_SORTER_ML_RUNTIME=rt)
                ml_log = work / "ml-service.log"  # where `sort` writes its ML child's output
                if rc != 0 or summary is None or f" on {rt}, weights" not in ml_log.read_text(errors="replace"):
                    raise RuntimeError(f"sort on {rt} exited {rc}, or its ML service did not run {rt}: see {work}")
                run = {"wall_s": float(summary["wall_seconds"]), "outer_wall_s": outer,
                       "ml_seconds": float(summary["ml_seconds"]),
                       "processed": int(summary["processed"]), "faces": int(summary["faces"]),
                       "failed": int(summary["failed"])}
                run["photos_per_s"] = run["processed"] / run["wall_s"]
                runs[rt].append(run)
                print(f"throughput round {r} {rt}: {json.dumps(run)}", file=sys.stderr, flush=True)
    out = {rt: {"runs": v, "median_photos_per_s": statistics.median(x["photos_per_s"] for x in v),
                "median_outer_wall_s": statistics.median(x["outer_wall_s"] for x in v)} for rt, v in runs.items()}
    for rt in RUNTIMES:
        out[rt]["ratio_to_onnxruntime"] = out[rt]["median_photos_per_s"] / out["onnxruntime"]["median_photos_per_s"]
    return out


def pool(rounds: int) -> dict:
    """The ML service's pipeline in its process pool alone (bench/ml/ours.py: 2 workers, models loaded first), on
    every photo of ../shared/testdata/faces, per runtime, alternating: what the runtime changes without `sort`."""
    import tempfile

    paths = [str(p) for p in sorted(FACES.rglob("*")) if p.suffix.lower() in IMAGE_EXT]
    runs = {rt: [] for rt in RUNTIMES}
    with tempfile.TemporaryDirectory(prefix="runtimes-pool-") as tmp:
        for r in range(rounds):
            for rt in (list(RUNTIMES) if r % 2 == 0 else list(RUNTIMES)[::-1]):
                out = Path(tmp) / f"{rt}-{r}.json"
                subprocess.run([sys.executable, str(Path(__file__).parent / "ours.py"), str(out), "2", *paths],
                               env={**os.environ, "PHOTO_SORTER_ML_RUNTIME": rt}, check=True,
                               stderr=subprocess.DEVNULL)
                d = json.loads(out.read_text())
                rows = d["rows"]
                run = {"wall_s": d["wall_s"], "photos": len(rows), "faces": sum(x["faces"] for x in rows),
                       "photos_per_s": len(rows) / d["wall_s"],
                       **{k: sum(x[k] for x in rows) / len(rows) for k in ("detect_ms", "embed_ms", "total_ms")}}
                runs[rt].append(run)
                print(f"pool round {r} {rt}: {json.dumps(run)}", file=sys.stderr, flush=True)
    out = {rt: {"runs": v, "median_photos_per_s": statistics.median(x["photos_per_s"] for x in v)}
           for rt, v in runs.items()}
    for rt in RUNTIMES:
        out[rt]["ratio_to_onnxruntime"] = out[rt]["median_photos_per_s"] / out["onnxruntime"]["median_photos_per_s"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=40, help="calls per configuration per round")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-identity", action="store_true")
    ap.add_argument("--throughput", type=int, default=0, metavar="ROUNDS", help="photo-sorter sort rounds (0: none)")
    ap.add_argument("--pool", type=int, default=0, metavar="ROUNDS", help="process-pool rounds (0: none)")
    ap.add_argument("--binary", type=Path, default=ROOT / ".build/release/photo-sorter")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "?")
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": model, "cores": os.cpu_count(),
              "python": platform.python_version(), "versions": {e: engine_version(e) for e in ENGINES}}
    if not a.skip_speed:
        result["speed"] = speed(a.rounds, a.calls)
    if not a.skip_identity:
        result["identity"] = identity(["lfw_small", "dlib_faces", "face_recognition_examples"])
    if a.pool:
        result["pool"] = pool(a.pool)
    if a.throughput:
        result["throughput"] = throughput(a.throughput, a.binary)
    text = json.dumps(result, indent=1)
    if a.json:
        a.json.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
