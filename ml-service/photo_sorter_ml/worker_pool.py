"""The worker processes and the bounded queue in front of them.

Analyses run in a process pool (spawn), one model copy per worker, loaded by the pool initializer; dlib holds the
GIL for most of a detection, so threads would not scale (README, "Design notes"). The queue is a count, not a
list: `depth` jobs are accepted and not yet finished (waiting + running), at most `capacity` = workers + queue size;
beyond it a job is refused with the time the waiting jobs should take (`retry_after`).
"""
from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from .config import Settings
from .pipeline import PipelineParams, analyse_in_worker, init_worker, params_dict, ping, render_in_worker

log = logging.getLogger("photo_sorter_ml")


class NotReady(Exception):
    """The models failed to load (`message` says why)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class QueueFull(Exception):
    """Every place in the queue is taken; `retry_after` seconds is when one should be free."""

    def __init__(self, message: str, depth: int, retry_after: int):
        super().__init__(message)
        self.message, self.depth, self.retry_after = message, depth, retry_after


class WorkerPool:
    def __init__(self, params: PipelineParams, workers: int, queue_size: int):
        self.params = params
        self.workers = workers
        self.capacity = queue_size + workers
        self.executor: ProcessPoolExecutor | None = None
        self._pings: list[Future] = []
        self._started = 0.0
        self.ready = False
        self.load_error: str | None = None
        self.depth = 0  # accepted and not yet finished (waiting + running)
        self._avg_job_s = 1.0

    @classmethod
    def for_settings(cls, settings: Settings) -> "WorkerPool":
        return cls(PipelineParams.from_settings(settings), settings.workers, settings.queue_size)

    # --- life ---------------------------------------------------------------------------------------------
    def _new_executor(self) -> ProcessPoolExecutor:
        # One BLAS thread per worker: the pool already fills the cores.
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, initargs=(params_dict(self.params),))

    def start(self) -> None:
        """Starts the worker processes, which load their models at once (a ping each: the executor only spawns a
        process for work). Idempotent: `__main__` starts the pool before importing the HTTP layer, so the models
        load while it imports (bench/RESULTS.md, "Issue 23, second pass")."""
        if self.executor is not None:
            return
        self._started = time.perf_counter()
        self.executor = self._new_executor()
        self._pings = [self.executor.submit(ping) for _ in range(self.workers)]

    async def warm_up(self) -> None:
        """Waits until every worker has its models loaded: `ready`, or `load_error` when loading failed."""
        try:
            pings = await asyncio.gather(*[asyncio.wrap_future(p) for p in self._pings])
            self.ready = True
            log.info("models loaded in %d worker process(es) in %.1fs (%s)", self.workers,
                     time.perf_counter() - self._started, pings[0]["model_version"])
        except Exception as e:
            self.load_error = f"{type(e).__name__}: {e}"
            log.error("model loading failed: %s", self.load_error)

    async def stop(self) -> None:
        if self.executor:
            await asyncio.to_thread(self.executor.shutdown, wait=True, cancel_futures=True)

    def abandon(self) -> None:
        """Stops the workers without waiting for them: the service will not run (a weight file failed its check)."""
        if self.executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    # --- the queue ----------------------------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        return max(0, self.depth - self.workers)

    def retry_after(self) -> int:
        return max(1, math.ceil(self._avg_job_s * max(1, self.waiting) / self.workers))

    def admit(self) -> None:
        """Takes a place in the queue for one `analyse` or `render`, which gives it back; or raises NotReady or
        QueueFull. Jobs are taken while the workers still load their models (the executor holds them until a worker
        is ready), so a client starting with the service (`sort`) hands its first photos over at once."""
        if self.load_error:
            raise NotReady(f"models failed to load: {self.load_error}")
        if self.depth >= self.capacity:
            raise QueueFull(f"queue full ({self.waiting} waiting, {self.workers} running)", self.depth,
                            self.retry_after())
        self.depth += 1

    @asynccontextmanager
    async def _place(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self.depth -= 1

    # --- jobs ---------------------------------------------------------------------------------------------
    async def run(self, what: str, fn: Callable[..., dict], *args) -> dict:
        """fn(*args) in a worker. A dead worker breaks the whole pool, failing every job in it, most of them not the
        crash's cause (or the worker was killed from outside): the pool is replaced and the job runs once more in the
        fresh one; a second crash becomes a failure result."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = self.executor
            try:
                return await loop.run_in_executor(executor, fn, *args)
            except BrokenProcessPool:
                log.error("a worker process died while %s %s (attempt %d); restarting the pool", what,
                          args[1] if len(args) > 1 else "the image", attempt)
                if self.executor is executor:
                    self.executor = self._new_executor()
        return {"ok": False, "error_kind": "internal", "error": f"worker process crashed while {what} the image",
                "timings": {}}

    async def analyse(self, source: str | bytes, name: str) -> dict:
        """One analysis (`pipeline.analyse`) of an admitted job; its time feeds the average behind `retry_after`."""
        async with self._place():
            t0 = time.perf_counter()
            result = await self.run("analysing", analyse_in_worker, source, name)
            self._avg_job_s = 0.8 * self._avg_job_s + 0.2 * (time.perf_counter() - t0)
            return result

    async def render(self, source: str, name: str, boxes: list[list[int]], quarter_turns: int = 0) -> dict:
        """A photo's preview and thumbnails (`pipeline.render_photo`) for an admitted job. Not part of the job-time
        average behind `retry_after`: it is much shorter than an analysis."""
        async with self._place():
            return await self.run("rendering", render_in_worker, source, name, boxes, quarter_turns)
