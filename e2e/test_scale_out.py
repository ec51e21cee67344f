"""Scale-out end to end: two `photo-sorter serve` instances and two ML services on one PostgreSQL database,
sorting lfw_small at once, with one service and then one ML service killed with SIGKILL mid-run — once with the
database queue and once with the Kafka queue.

Needs the PostgreSQL server of scripts/test.sh (PHOTO_SORTER_E2E_POSTGRES_URL set; creates its own fresh database
`photo_sorter_scale` with scripts/start-postgres.sh) and, for Kafka, its Tansu broker
(PHOTO_SORTER_E2E_KAFKA_BROKERS, and PHOTO_SORTER_E2E_KAFKA_LIB: the folder with the librdkafka 2.16 Tansu needs).
Real processes, real models (ArcFace), a real broker; nothing mocked.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench" / "accuracy"))
import harness  # noqa: E402
import metrics  # noqa: E402

LFW = harness.faces_dir() / "lfw_small"
PG_URL = os.environ.get("PHOTO_SORTER_E2E_POSTGRES_URL")
KAFKA_BROKERS = os.environ.get("PHOTO_SORTER_E2E_KAFKA_BROKERS")
KAFKA_LIB = os.environ.get("PHOTO_SORTER_E2E_KAFKA_LIB")
TIMEOUT = float(os.environ.get("PHOTO_SORTER_E2E_TIMEOUT", "1200"))

pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="PHOTO_SORTER_E2E_POSTGRES_URL not set (scripts/test.sh sets it)"),
    pytest.mark.skipif(not LFW.is_dir(), reason=f"lfw_small not found at {LFW}"),
]


def fresh_database() -> str:
    out = subprocess.run([str(harness.REPO / "scripts" / "start-postgres.sh")], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PHOTO_SORTER_PG_DB="photo_sorter_scale", PHOTO_SORTER_PG_FRESH="1"))
    return out.stdout.strip().splitlines()[-1]


def counts(base: str) -> dict:
    by_status: dict = {}
    for photo in harness.all_photos(base):
        by_status[photo["status"]] = by_status.get(photo["status"], 0) + 1
    return by_status


def wait_for(what: str, condition, timeout: float = TIMEOUT, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}")


def queue_env(queue: str) -> dict:
    if queue == "database":
        return {"PHOTO_SORTER_QUEUE": "database"}
    if not KAFKA_BROKERS:
        pytest.skip("PHOTO_SORTER_E2E_KAFKA_BROKERS not set (scripts/test.sh starts Tansu and sets it)")
    run = secrets.token_hex(4)  # a topic and group of its own: the broker is shared with other tests
    env = {"PHOTO_SORTER_QUEUE": "kafka", "PHOTO_SORTER_KAFKA_BROKERS": KAFKA_BROKERS,
           "PHOTO_SORTER_KAFKA_TOPIC": f"photos-to-process-e2e-{run}", "PHOTO_SORTER_KAFKA_GROUP": f"photo-sorter-e2e-{run}"}
    if KAFKA_LIB:
        env["LD_LIBRARY_PATH"] = KAFKA_LIB + os.pathsep + os.environ.get("LD_LIBRARY_PATH", "")
    return env


@pytest.mark.parametrize("queue", ["database", "kafka"])
def test_two_services_and_two_ml_services_survive_sigkill_and_sort_lfw_small_once(tmp_path, queue):
    queue_settings = queue_env(queue)
    database = fresh_database()
    binary = harness.find_binary()
    secret = secrets.token_hex(16)
    ports = [harness.free_port() for _ in range(2)]
    ml_ports = [harness.free_port() for _ in range(2)]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    ml_urls = ",".join(f"http://127.0.0.1:{p}" for p in ml_ports)
    roots = [str(LFW.resolve())]
    # A photo lost with a killed process is found by the stale-PROCESSING scheduler and retried; short timeouts
    # keep the test quick (production defaults: 600 s and 10 s).
    fast = dict(PHOTO_SORTER_PROCESSING_TIMEOUT_SECONDS=20, PHOTO_SORTER_RETRY_BACKOFF_SECONDS=1,
                PHOTO_SORTER_SCHEDULER_INTERVAL_SECONDS=1, PHOTO_SORTER_ML_TIMEOUT_SECONDS=10, **queue_settings)
    processes = []
    try:
        mls = [harness.start_ml_service(port, bases[0], roots, secret, tmp_path / f"ml{i}.log", workers=1,
                                        PHOTO_SORTER_CALLBACK_ALLOWLIST=",".join(bases))
               for i, port in enumerate(ml_ports)]
        processes += mls
        services = [harness.start_swift(binary, database, port, ml_urls, roots, secret, tmp_path / f"service{i}.log", **fast)
                    for i, port in enumerate(ports)]
        processes += services

        # Both instances ingest the whole folder at once; each photo row exists once (unique path).
        jobs = [harness.http_json("POST", f"{base}/ingest-folder", {"path": str(LFW), "recursive": True, "batchSize": 25})["jobId"]
                for base in bases]
        total = len(harness.list_images(LFW))
        wait_for("every photo registered", lambda: sum(counts(bases[0]).values()) == total, timeout=300)
        processed_ml = wait_for("both ML services at work", lambda: all(
            harness.http_json("GET", f"http://127.0.0.1:{p}/health")["processed"] > 0 for p in ml_ports), timeout=600)
        assert processed_ml

        wait_for("a quarter processed", lambda: counts(bases[0]).get("PROCESSED", 0) >= total // 4)
        before = {p["photo_id"]: p["person_ids"] for p in harness.all_photos(bases[0], status="PROCESSED")}
        os.kill(services[1].proc.pid, signal.SIGKILL)  # the service alone: its ML services stay up
        services[1].proc.wait(10)

        wait_for("half processed", lambda: counts(bases[0]).get("PROCESSED", 0) >= total // 2)
        os.killpg(mls[1].proc.pid, signal.SIGKILL)  # the ML service with its worker processes
        mls[1].proc.wait(10)

        def finished():
            c = counts(bases[0])
            return c if c.get("PROCESSED", 0) == total else None
        try:
            final = wait_for("every photo PROCESSED", finished, timeout=300)
        except TimeoutError:
            failed = [(p["path"], p["retry_count"], p["last_error"]) for p in harness.all_photos(bases[0], status="FAILED")]
            raise AssertionError(f"not every photo PROCESSED: {counts(bases[0])}; failed: {failed}")

        photos = harness.all_photos(bases[0])
        details = harness.photo_details(bases[0], photos)
        for path, d in details.items():  # a photo committed twice would show every face twice
            boxes = [tuple(det["bbox"]) for det in d.get("detections") or []]
            assert len(set(boxes)) == len(boxes), (path, boxes)
        after = {p["photo_id"]: p["person_ids"] for p in photos}
        changed = {pid: (ids, after[pid]) for pid, ids in before.items() if after[pid] != ids}
        assert not changed, f"photos processed before the kills changed persons: {changed}"

        labels, preds = [], []
        for path, ident in harness.labelled_photos(LFW):
            det = harness.labelled_detection(details[path], path) if path in details else None
            labels.append(ident)
            preds.append(None if det is None else det["person_id"])
        res = metrics.evaluate(labels, preds)
        pw, bc = res["pairwise"], res["bcubed"]
        print(f"\n[two services + two ML services, {queue} queue, kills] pairwise P {pw['precision']:.4f} R {pw['recall']:.4f}, "
              f"BCubed F1 {bc['f1']:.4f}, {final}")
        assert pw["precision"] >= 0.995 and bc["f1"] >= 0.99, res
        for job in jobs[:1]:
            status = harness.http_json("GET", f"{bases[0]}/ingest-status/{job}")
            assert status["done"], status
    except BaseException:
        for p in processes:
            print(f"--- {p.name} ({p.log_path}) ---\n{p.log_tail(3000)}", file=sys.stderr)
        raise
    finally:
        for p in processes:
            p.stop()
