"""What the HTTP handlers share: the worker pool, the person-dump cache, the callback client and the counters, and
the step from a worker's result to the wire schemas (`Analysis`, `CallbackPayload`).

The workers return plain picklable dicts with raw bytes (`pipeline.analyse`); this process adds what only it has
(suggestions from the person cache) and encodes the bytes as base64.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time

import numpy as np

from .callback import CallbackClient
from .config import Settings
from .models import model_spec, require_runtime, verify_weights
from .persons import PersonCache
from .schemas import Analysis, CallbackPayload, Detection, Meta, NewPerson, ProcessPhotoRequest
from .security import CallbackPolicy, PathPolicy
from .worker_pool import WorkerPool

log = logging.getLogger("photo_sorter_ml")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def timings_of(result: dict) -> dict[str, float]:
    return {k: round(float(v), 2) for k, v in (result.get("timings") or {}).items()}


def faces_of(result: dict, suggestions: list[tuple[int, float] | None]) -> tuple[list[Detection], list[NewPerson]]:
    """A worker result's faces on the wire; a face without a suggestion is also a candidate new person."""
    detections, new_persons = [], []
    for i, (d, suggestion) in enumerate(zip(result.get("detections") or [], suggestions)):
        embedding = b64(d["embedding"])
        face = {"bbox": [int(x) for x in d["bbox"]], "embedding": embedding,
                "confidence": round(float(d["confidence"]), 4)}
        if d.get("embedding_norm") is not None:
            face["embedding_norm"] = round(float(d["embedding_norm"]), 4)
        if d.get("thumbnail"):
            face["thumbnail"] = b64(d["thumbnail"])
        face.update({k: d[k] for k in ("xmp_name", "source") if k in d})
        if suggestion is not None:
            face["suggested_person_id"], face["similarity"] = suggestion[0], round(suggestion[1], 6)
        else:
            new_persons.append(NewPerson(temp_id=f"t-{i}", embedding=embedding, suggested_display_name="unknown",
                                         detection_index=i))
        detections.append(Detection(**face))
    return detections, new_persons


class Service:
    """Checks the model's runtime and weights at construction, so that a missing package or an altered weight file
    stops the service before it listens (models.ModelFileError); the workers check again when they load. `pool`: one
    already started (`__main__` starts it first, so the models load while this process imports the service), else a
    new one that `start` starts."""

    def __init__(self, settings: Settings, pool: WorkerPool | None = None):
        self.settings = settings
        self.spec = model_spec(settings.model)
        require_runtime(settings.model, settings.runtime)
        self.weights = verify_weights(settings.model, settings.detector, settings.model_dir)
        self.model_version = self.spec.model_version(settings.detector)
        self.paths = PathPolicy(settings.allowed_roots)
        self.callbacks_policy = CallbackPolicy(settings.callback_allowlist)
        self.pool = pool or WorkerPool.for_settings(settings)
        self.persons = PersonCache(settings.service_url, settings.shared_secret, self.spec.embedding_dim,
                                   settings.dump_refresh_s, settings.dump_full_refresh_s)
        self.callbacks = CallbackClient(settings.callback_retries, settings.callback_backoff_s,
                                        settings.callback_timeout_s, settings.shared_secret)
        self.processed = 0
        self.failed = 0
        self.started = time.time()
        self.tasks: set[asyncio.Task] = set()

    # --- life ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.pool.start()
        self.spawn(self.pool.warm_up())
        self.spawn(self._refresh_persons())

    def spawn(self, job) -> None:
        """Runs `job` in the background; `stop` cancels what is still running."""
        task = asyncio.create_task(job)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _refresh_persons(self) -> None:
        while True:
            try:
                await self.persons.refresh()
            except Exception:  # never let the loop die
                log.exception("person dump refresh failed")
            await asyncio.sleep(max(0.5, self.settings.dump_refresh_s))

    async def stop(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.callbacks.aclose()
        await self.persons.aclose()
        await self.pool.stop()

    # --- results ------------------------------------------------------------------------------------------
    async def analysis(self, result: dict) -> Analysis:
        """A worker's successful result on the wire, with a suggestion for each face the person cache has one for."""
        dets = result.get("detections") or []
        if dets:
            await self.persons.ensure_fresh()
        vectors = (np.stack([np.frombuffer(d["embedding"], dtype="<f4") for d in dets])
                   if dets else np.zeros((0, self.spec.embedding_dim), dtype=np.float32))
        detections, new_persons = faces_of(result, self.persons.suggest(vectors))
        optional = {"xmp": result["xmp"]} if result.get("xmp") else {}  # fields sent only when there is a value
        if result.get("preview"):
            optional.update(preview=b64(result["preview"]), preview_width=int(result["preview_width"]),
                            preview_height=int(result["preview_height"]))
        return Analysis(status="PROCESSED", error=None, width=result.get("width"), height=result.get("height"),
                        detections=detections, quarter_turns=int(result.get("quarter_turns") or 0),
                        taken=result.get("taken"), new_persons=new_persons,
                        meta=Meta(model_version=result.get("model_version") or self.model_version,
                                  timings=timings_of(result)), **optional)

    async def process_job(self, req: ProcessPhotoRequest, real_path: str) -> None:
        """Analyses an admitted /process-photo job and sends its callback, PROCESSED or FAILED: never no callback."""
        t0 = time.perf_counter()
        result = await self.pool.analyse(real_path, req.path)
        photo = {"photo_id": req.photo_id, "path": req.path, "callback_id": req.callback_id}
        try:
            if result.get("ok"):
                payload = CallbackPayload.processed(**photo, analysis=await self.analysis(result))
                self.processed += 1
            else:
                payload = CallbackPayload.failed(**photo, error=result.get("error") or "unknown error",
                                                 meta=Meta(model_version=self.model_version,
                                                           timings=timings_of(result)))
                self.failed += 1
                log.info("photo %s failed: %s", req.photo_id, payload.error)
        except Exception as e:
            log.exception("shaping result for photo %s", req.photo_id)
            payload = CallbackPayload.failed(**photo, error=f"internal error: {type(e).__name__}: {e}",
                                             meta=Meta(model_version=self.model_version, timings={}))
            self.failed += 1
        payload.meta.timings["queue_ms"] = round((time.perf_counter() - t0) * 1000.0, 2)
        await self.callbacks.send(req.callbackUrl, payload)
