"""Thin FastAPI layer: validation, safety checks, the bounded job queue, callbacks.

The heavy work runs in a process pool (one model copy per worker process, loaded by the pool
initializer); this process only routes requests, keeps the person-dump cache and sends callbacks.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import importlib.metadata
import logging
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .callback import SECRET_HEADER, CallbackClient
from .config import Settings
from .decode import DecodeError
from .models import model_spec, require_runtime, verify_weights
from .persons import PersonCache
from .pipeline import PipelineParams, analyse_in_worker, init_worker, params_dict, ping, render_in_worker
from .security import CallbackPolicy, PathPolicy
from .taken_date import read_taken

log = logging.getLogger("photo_sorter_ml")


class ProcessPhotoRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    photo_id: int
    path: str = Field(min_length=1)
    callbackUrl: str = Field(min_length=1, alias="callbackUrl")
    callback_id: str | int | None = None


class FromImageRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    path: str = Field(min_length=1)


class RenderRequest(BaseModel):
    """POST /render: thumbnails for these boxes ([x1, y1, x2, y2], orientation-corrected pixels) and a preview."""
    model_config = ConfigDict(extra="ignore")
    path: str = Field(min_length=1)
    boxes: list[Annotated[list[StrictInt], Field(min_length=4, max_length=4)]] = Field(max_length=64)
    # Counter-clockwise quarter turns the analysis gave the photo (its callback's `quarter_turns`): boxes are
    # in the turned photo.
    quarter_turns: StrictInt = Field(0, ge=0, le=3)

    @field_validator("boxes")
    @classmethod
    def _boxes_have_area(cls, boxes: list[list[int]]) -> list[list[int]]:
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            if x1 >= x2 or y1 >= y2:
                raise ValueError(f"box {i} {[x1, y1, x2, y2]} needs x1 < x2 and y1 < y2")
        return boxes


# Paths one POST /taken-dates may ask for.
MAX_TAKEN_PATHS = 500


class TakenDatesRequest(BaseModel):
    """POST /taken-dates: when each of these photos was taken."""
    model_config = ConfigDict(extra="ignore")
    paths: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=MAX_TAKEN_PATHS)


# --- wire shapes, for the OpenAPI document (/openapi.json); the handlers build these answers as dicts --------

class ErrorBody(BaseModel):
    """Every error answer. `detail` lists validation errors; `queue_depth` comes with 429, `kind` and `path`
    with a file that could not be analysed. Never a stack trace."""
    error: str
    detail: list[dict[str, Any]] | None = None
    queue_depth: int | None = None
    kind: str | None = None
    path: str | None = None


class Accepted(BaseModel):
    accepted: bool
    queue_depth: int


class Detection(BaseModel):
    bbox: list[int] = Field(min_length=4, max_length=4)
    embedding: str = Field(description="base64 of little-endian float32 values")
    confidence: float
    thumbnail: str | None = None
    suggested_person_id: int | None = None
    similarity: float | None = None


class NewPerson(BaseModel):
    temp_id: str
    embedding: str
    suggested_display_name: str
    detection_index: int


class Taken(BaseModel):
    """When the photo was taken, from its EXIF (DateTimeOriginal, else DateTimeDigitized) or XMP
    (photoshop:DateCreated, else xmp:CreateDate)."""
    local: str = Field(description="the camera's wall-clock time, YYYY-MM-DDTHH:MM:SS")
    offset: str | None = Field(description="+HH:MM or -HH:MM from UTC; null when the photo does not say")
    source: Literal["exif", "xmp"]


class Meta(BaseModel):
    model_version: str
    timings: dict[str, float]


class Analysis(BaseModel):
    """POST /embeddings/from-image: the same fields as the callback to the service."""
    status: str
    error: None
    width: int | None
    height: int | None
    detections: list[Detection]
    # Counter-clockwise quarter turns that made the photo upright (a sideways scan): width, height and boxes
    # are of the turned photo.
    quarter_turns: int = 0
    taken: Taken | None = Field(description="null when the photo carries no valid date")
    new_persons: list[NewPerson]
    meta: Meta
    preview: str | None = None
    preview_width: int | None = None
    preview_height: int | None = None


class Rendered(BaseModel):
    width: int
    height: int
    preview: str
    preview_width: int
    preview_height: int
    thumbnails: list[str]


class DatedPath(BaseModel):
    """One photo of POST /taken-dates: its date (null when it carries none), or why it could not be read."""
    path: str
    taken: Taken | None
    error: str | None


class TakenDates(BaseModel):
    dates: list[DatedPath] = Field(description="one per requested path, in the request's order")


class Health(BaseModel):
    status: str
    model: str
    model_version: str
    embedding_dim: int
    models_loaded: bool
    load_error: str | None
    queue_depth: int
    queue_waiting: int
    queue_capacity: int
    workers: int
    processed: int
    failed: int
    callbacks_delivered: int
    callbacks_failed: int
    person_cache: dict[str, Any]
    uptime_s: float


class Version(BaseModel):
    service: str
    version: str
    model: str
    model_version: str
    embedding_dim: int
    detector: str
    detect_max_side: int
    upsample: int
    suggest_threshold: float
    weights_package: dict[str, str | None]
    weights: list[dict[str, Any]]
    licence: str
    runtime: dict[str, Any]


# Bodies of the JSON endpoints are small (a path, up to 64 boxes): anything larger is refused unread.
MAX_JSON_BYTES = 1024 * 1024


def _responses(ok: type[BaseModel], ok_status: int = 200, *errors: int) -> dict:
    """`responses=` for the document only: the handlers' answers are not re-validated on the way out."""
    return {ok_status: {"model": ok}, **{code: {"model": ErrorBody} for code in errors}}


def _json_body(model: type[BaseModel], *, multipart: bool = False) -> dict:
    """`openapi_extra` for a handler that reads its body itself (to answer 400/413/422 its own way)."""
    content: dict[str, Any] = {"application/json": {"schema": model.model_json_schema()}}
    if multipart:
        content["multipart/form-data"] = {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}}}}
    return {"requestBody": {"required": True, "content": content}}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None, **extra: Any):
        self.status, self.message, self.headers, self.extra = status, message, headers or {}, extra


def _err(status: int, message: str, headers: dict | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


class Service:
    """Holds the pool, the queue accounting, the person cache and the callback client."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.spec = model_spec(settings.model)
        # Checked here, in the API process, so that a missing runtime package or a missing or altered weight file
        # stops the service before it listens (models.ModelFileError); the workers check again when they load.
        require_runtime(settings.model)
        self.weights = verify_weights(settings.model, settings.detector, settings.model_dir)
        self.model_version = self.spec.model_version(settings.detector)
        self.paths = PathPolicy(settings.allowed_roots)
        self.callbacks_policy = CallbackPolicy(settings.callback_allowlist)
        self.params = PipelineParams.from_settings(settings)
        self.pool: ProcessPoolExecutor | None = None
        self.ready = False
        self.load_error: str | None = None
        self.depth = 0  # accepted and not yet analysed (waiting + running)
        self.processed = 0
        self.failed = 0
        self.started = time.time()
        self._avg_job_s = 1.0
        self.tasks: set[asyncio.Task] = set()
        self.persons = PersonCache(settings.service_url, settings.shared_secret, self.spec.embedding_dim,
                                   settings.dump_refresh_s, settings.dump_full_refresh_s)
        self.callbacks = CallbackClient(settings.callback_retries, settings.callback_backoff_s,
                                        settings.callback_timeout_s, settings.shared_secret)

    # --- pool -------------------------------------------------------------------------------------
    def _new_pool(self) -> ProcessPoolExecutor:
        # One BLAS thread per worker: the pool already fills the cores.
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        ctx = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(max_workers=self.settings.workers, mp_context=ctx, initializer=init_worker,
                                   initargs=(params_dict(self.params),))

    async def start(self) -> None:
        self.pool = self._new_pool()
        self.tasks.add(asyncio.create_task(self._warm_up()))
        self.tasks.add(asyncio.create_task(self._refresh_loop()))

    async def _warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            await asyncio.gather(*[loop.run_in_executor(self.pool, ping) for _ in range(self.settings.workers)])
            self.ready = True
            log.info("models loaded in %d worker process(es) in %.1fs (%s)", self.settings.workers,
                     time.perf_counter() - t0, self.model_version)
        except Exception as e:
            self.load_error = f"{type(e).__name__}: {e}"
            log.error("model loading failed: %s", self.load_error)

    async def _refresh_loop(self) -> None:
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
        if self.pool:
            await asyncio.to_thread(self.pool.shutdown, wait=True, cancel_futures=True)

    # --- queue ------------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.settings.queue_size + self.settings.workers

    @property
    def waiting(self) -> int:
        return max(0, self.depth - self.settings.workers)

    def retry_after(self) -> int:
        return max(1, math.ceil(self._avg_job_s * max(1, self.waiting) / self.settings.workers))

    def admit(self) -> None:
        if not self.ready:
            raise ApiError(503, self.load_error and f"models failed to load: {self.load_error}"
                           or "models are still loading", {"Retry-After": "2"})
        if self.depth >= self.capacity:
            raise ApiError(429, f"queue full ({self.waiting} waiting, {self.settings.workers} running)",
                           {"Retry-After": str(self.retry_after())}, queue_depth=self.depth)

    async def _in_pool(self, what: str, fn, *args) -> dict:
        """fn(*args) in a worker. A dead worker breaks the whole pool, failing every job in it, most of them not the
        crash's cause (or the worker was killed from outside): the pool is replaced and the job runs once more in the
        fresh one; a second crash becomes a failure result."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self.pool
            try:
                return await loop.run_in_executor(pool, fn, *args)
            except BrokenProcessPool:
                log.error("a worker process died while %s %s (attempt %d); restarting the pool", what,
                          args[1] if len(args) > 1 else "the image", attempt)
                if self.pool is pool:
                    self.pool = self._new_pool()
        return {"ok": False, "error_kind": "internal", "error": f"worker process crashed while {what} the image",
                "timings": {}}

    async def run_analysis(self, source: str | bytes, name: str) -> dict:
        """Runs one analysis in the pool; the caller has already counted it in `depth`."""
        t0 = time.perf_counter()
        try:
            result = await self._in_pool("analysing", analyse_in_worker, source, name)
            self._avg_job_s = 0.8 * self._avg_job_s + 0.2 * (time.perf_counter() - t0)
            return result
        finally:
            self.depth -= 1

    async def run_render(self, source: str, name: str, boxes: list[list[int]], quarter_turns: int = 0) -> dict:
        """Decodes a photo and makes its preview and thumbnails in the pool (counted in `depth` by the
        caller). Not part of the job-time average behind Retry-After: it is much shorter than an analysis."""
        try:
            return await self._in_pool("rendering", render_in_worker, source, name, boxes, quarter_turns)
        finally:
            self.depth -= 1

    # --- results ----------------------------------------------------------------------------------
    async def shape(self, result: dict) -> dict:
        """Worker result -> wire shape: base64 embeddings and thumbnails, suggestions, new_persons, preview, meta."""
        dets = result.get("detections") or []
        if dets:
            await self.persons.ensure_fresh()
        vectors = (np.stack([np.frombuffer(d["embedding"], dtype="<f4") for d in dets])
                   if dets else np.zeros((0, self.spec.embedding_dim), dtype=np.float32))
        suggestions = self.persons.suggest(vectors, self.settings.suggest_threshold)
        detections, new_persons = [], []
        for i, (d, s) in enumerate(zip(dets, suggestions)):
            emb = base64.b64encode(d["embedding"]).decode("ascii")
            out = {"bbox": [int(x) for x in d["bbox"]], "embedding": emb, "confidence": round(float(d["confidence"]), 4)}
            if d.get("thumbnail"):
                out["thumbnail"] = b64(d["thumbnail"])
            if s is not None:
                out["suggested_person_id"], out["similarity"] = s[0], round(s[1], 6)
            else:
                new_persons.append({"temp_id": f"t-{i}", "embedding": emb, "suggested_display_name": "unknown",
                                    "detection_index": i})
            detections.append(out)
        timings = {k: round(float(v), 2) for k, v in (result.get("timings") or {}).items()}
        body = {"width": result.get("width"), "height": result.get("height"), "detections": detections,
                "quarter_turns": int(result.get("quarter_turns") or 0), "taken": result.get("taken"),
                "new_persons": new_persons,
                "meta": {"model_version": result.get("model_version") or self.model_version, "timings": timings}}
        if result.get("preview"):
            body.update(preview=b64(result["preview"]), preview_width=int(result["preview_width"]),
                        preview_height=int(result["preview_height"]))
        return body

    async def process_job(self, req: ProcessPhotoRequest, real_path: str) -> None:
        t0 = time.perf_counter()
        result = await self.run_analysis(real_path, req.path)
        payload: dict[str, Any] = {"photo_id": req.photo_id, "path": req.path, "callback_id": req.callback_id}
        try:
            if result.get("ok"):
                payload.update(status="PROCESSED", error=None, **(await self.shape(result)))
                self.processed += 1
            else:
                timings = {k: round(float(v), 2) for k, v in (result.get("timings") or {}).items()}
                payload.update(status="FAILED", error=result.get("error") or "unknown error", width=None,
                               height=None, detections=[], new_persons=[],
                               meta={"model_version": self.model_version, "timings": timings})
                self.failed += 1
                log.info("photo %s failed: %s", req.photo_id, payload["error"])
        except Exception as e:  # never lose a job without a callback
            log.exception("shaping result for photo %s", req.photo_id)
            payload.update(status="FAILED", error=f"internal error: {type(e).__name__}: {e}", width=None,
                           height=None, detections=[], new_persons=[], meta={"model_version": self.model_version,
                                                                              "timings": {}})
            self.failed += 1
        payload["meta"].setdefault("timings", {})["queue_ms"] = round((time.perf_counter() - t0) * 1000.0, 2)
        await self.callbacks.send(req.callbackUrl, payload)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if service.paths.allow_all:
            log.warning("PHOTO_SORTER_ALLOWED_ROOTS is not set: every readable path is allowed")
        if not settings.shared_secret:
            log.warning("PHOTO_SORTER_SHARED_SECRET is not set: requests are not authenticated")
        log.info("model %s (%s, %d-d), weights: %s", settings.model, service.model_version,
                 service.spec.embedding_dim, ", ".join(f"{w.name} sha256 {w.sha256[:12]}" for w in service.weights))
        await service.start()
        yield
        await service.stop()

    app = FastAPI(title="photo-sorter ML service", version=__version__, lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _err(exc.status, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return _err(422, "invalid request", detail=_clean_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _err(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # The traceback goes to the log (Starlette re-raises to the server after this answer), never to the client.
        return _err(500, "internal error; the ML service log has the details")

    def check_secret(request: Request) -> None:
        if settings.shared_secret:
            given = request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(given.encode(), settings.shared_secret.encode()):
                raise ApiError(401, f"missing or wrong {SECRET_HEADER} header")

    async def json_body(request: Request, model):
        raw = await limited_body(request, MAX_JSON_BYTES)
        if not raw:
            raise ApiError(400, "request body is empty; expected JSON")
        try:
            return model.model_validate_json(raw)
        except ValidationError as e:
            errs = e.errors()
            if any(err.get("type") == "json_invalid" for err in errs):
                raise ApiError(400, "malformed JSON", detail=_clean_errors(errs))
            raise ApiError(422, "invalid request", detail=_clean_errors(errs))

    async def limited_body(request: Request, limit: int) -> bytes:
        """The body, 413 once it is larger than `limit` bytes (told by Content-Length, or counted as it streams)."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise ApiError(413, f"request body larger than {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def allowed_path(path: str) -> str:
        """The real path of a requested file, 403 when it lies outside the allowed roots."""
        real = service.paths.resolve(path)
        if real is None:
            raise ApiError(403, f"path is outside the allowed roots: {path}")
        return real

    @app.post("/process-photo", status_code=202, openapi_extra=_json_body(ProcessPhotoRequest),
              responses=_responses(Accepted, 202, 400, 401, 403, 413, 422, 429, 503))
    async def process_photo(request: Request):
        check_secret(request)
        req = await json_body(request, ProcessPhotoRequest)
        real = allowed_path(req.path)
        if not service.callbacks_policy.allowed(req.callbackUrl):
            raise ApiError(403, f"callback URL origin is not on the allowlist: {req.callbackUrl}")
        service.admit()
        service.depth += 1
        task = asyncio.create_task(service.process_job(req, real))
        service.tasks.add(task)
        task.add_done_callback(service.tasks.discard)
        return JSONResponse({"accepted": True, "queue_depth": service.depth}, status_code=202)

    @app.post("/embeddings/from-image", openapi_extra=_json_body(FromImageRequest, multipart=True),
              responses=_responses(Analysis, 200, 400, 401, 403, 404, 413, 422, 429, 500, 503))
    async def from_image(request: Request):
        check_secret(request)
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            # Refused unread when Content-Length already says so (1 MiB of slack for the multipart framing).
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > settings.max_upload_bytes + MAX_JSON_BYTES:
                raise ApiError(413, f"upload larger than {settings.max_upload_bytes} bytes")
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(422, "multipart body needs a 'file' part")
            data = await upload.read(settings.max_upload_bytes + 1)
            if len(data) > settings.max_upload_bytes:
                raise ApiError(413, f"upload larger than {settings.max_upload_bytes} bytes")
            source, name, shown = data, upload.filename or "upload", upload.filename or "upload"
        else:
            req = await json_body(request, FromImageRequest)
            real = allowed_path(req.path)
            source, name, shown = real, req.path, req.path
        service.admit()
        service.depth += 1
        result = await service.run_analysis(source, name)
        if not result.get("ok"):
            return _failed(result, shown)
        body = await service.shape(result)
        return {"status": "PROCESSED", "error": None, **body}

    @app.post("/render", openapi_extra=_json_body(RenderRequest),
              responses=_responses(Rendered, 200, 400, 401, 403, 404, 413, 422, 429, 500, 503))
    async def render(request: Request):
        """A preview of the photo and a face thumbnail per box, for photos analysed without them."""
        check_secret(request)
        req = await json_body(request, RenderRequest)
        real = allowed_path(req.path)
        service.admit()
        service.depth += 1
        result = await service.run_render(real, req.path, req.boxes, req.quarter_turns)
        if not result.get("ok"):
            return _failed(result, req.path)
        return {"width": result["width"], "height": result["height"], "preview": b64(result["preview"]),
                "preview_width": result["preview_width"], "preview_height": result["preview_height"],
                "thumbnails": [b64(t) for t in result["thumbnails"]]}

    def dated(path: str) -> dict:
        """One photo's /taken-dates entry: a path outside the roots or a file that is no readable image is its error."""
        taken, error = None, None
        try:
            taken = read_taken(allowed_path(path), path)
        except (ApiError, DecodeError) as e:
            error = e.message
        except Exception as e:  # a bug must not fail the other photos
            log.exception("reading the date taken of %s", path)
            error = f"internal error: {type(e).__name__}: {e}"
        return {"path": path, "taken": asdict(taken) if taken else None, "error": error}

    @app.post("/taken-dates", openapi_extra=_json_body(TakenDatesRequest),
              responses=_responses(TakenDates, 200, 400, 401, 413, 422))
    async def taken_dates(request: Request):
        """When each photo was taken, from its header and metadata (threads, not the model workers): for photos
        analysed before analyses reported it."""
        check_secret(request)
        req = await json_body(request, TakenDatesRequest)
        return {"dates": await asyncio.gather(*(asyncio.to_thread(dated, p) for p in req.paths))}

    @app.get("/health", responses=_responses(Health))
    async def health():
        return {
            "status": "ok" if service.ready else ("error" if service.load_error else "loading"),
            "model": settings.model,
            "model_version": service.model_version,
            "embedding_dim": service.spec.embedding_dim,
            "models_loaded": service.ready,
            "load_error": service.load_error,
            "queue_depth": service.depth,
            "queue_waiting": service.waiting,
            "queue_capacity": service.capacity,
            "workers": settings.workers,
            "processed": service.processed,
            "failed": service.failed,
            "callbacks_delivered": service.callbacks.delivered,
            "callbacks_failed": service.callbacks.failed,
            "person_cache": service.persons.status(),
            "uptime_s": round(time.time() - service.started, 1),
        }

    @app.get("/version", responses=_responses(Version))
    async def version():
        spec = service.spec
        return {
            "service": "photo-sorter-ml",
            "version": __version__,
            "model": spec.name,
            "model_version": service.model_version,
            "embedding_dim": spec.embedding_dim,
            "detector": spec.detector_name(settings.detector),
            "detect_max_side": settings.detect_max_side,
            "upsample": settings.upsample,
            "suggest_threshold": settings.suggest_threshold,
            "weights_package": {"name": spec.weights.distribution,
                                "version": installed_version(spec.weights.distribution)},
            "weights": [w.as_dict() for w in service.weights],
            "licence": spec.weights.licence,
            "runtime": runtime_info(spec.name),
        }

    return app


def _failed(result: dict, shown: str) -> JSONResponse:
    """A worker's failure result as an answer: 404 for a missing file, 500 for our own errors, else 422."""
    kind = result.get("error_kind")
    status = {"missing": 404, "internal": 500}.get(kind, 422)
    return _err(status, result.get("error") or "unknown error", kind=kind, path=shown)


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def runtime_info(model: str) -> dict:
    """Versions of the inference libraries (dlib's build flags need the module; onnxruntime's do not)."""
    if model == "dlib":
        from .models.dlib_models import dlib_info

        return {"dlib": dlib_info()}
    return {name: installed_version(name) for name in ("onnxruntime", "insightface", "opencv-python-headless")}


def _clean_errors(errors: list) -> list:
    out = []
    for e in errors:
        out.append({"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")})
    return out
