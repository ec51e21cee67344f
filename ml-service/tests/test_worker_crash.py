"""A pool worker that dies mid-job (killed from outside, or by another job) must not fail the photos in the pool:
the real WorkerPool replaces the pool and runs each job once more; a job that crashes its worker again fails."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

from photo_sorter_ml.config import Settings
from photo_sorter_ml.pipeline import PipelineParams
from photo_sorter_ml.worker_pool import WorkerPool


def crash_first_time(marker: str, name: str) -> dict:
    """Kills its own worker process the first time it runs (no marker yet), then answers."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(9)
    return {"ok": True, "ran": name}


def always_crash(marker: str, name: str) -> dict:
    os._exit(9)


def run_in_pool(fn, marker: Path) -> dict:
    async def go() -> dict:
        pool = WorkerPool(PipelineParams.from_settings(Settings(workers=1)), workers=1, queue_size=0)
        pool.start()
        try:
            return await pool.run("analysing", fn, str(marker), "photo.jpg")
        finally:
            await pool.stop()
    return asyncio.run(go())


def test_job_whose_worker_died_runs_again_in_a_fresh_pool_and_succeeds(tmp_path):
    assert run_in_pool(crash_first_time, tmp_path / "crashed-once") == {"ok": True, "ran": "photo.jpg"}
    assert (tmp_path / "crashed-once").exists()


def test_job_that_crashes_its_worker_twice_becomes_a_failure_result(tmp_path):
    result = run_in_pool(always_crash, tmp_path / "unused")
    assert result["ok"] is False and result["error_kind"] == "internal", result
    assert "worker process crashed while analysing" in result["error"]
