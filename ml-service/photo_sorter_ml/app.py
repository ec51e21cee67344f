"""The HTTP layer: the routes and the app. What every request passes first and the error answers are in
`request_checks.py`, the wire shapes in `schemas.py`, the work in `service.py` (person cache, callbacks) and
`worker_pool.py` (the queue and the worker processes).
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import signal
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import asdict

from fastapi import APIRouter, Depends, FastAPI, Request

from . import __version__
from .config import Settings
from .decode import DecodeError
from .models.runtimes import engine_version, engines
from .request_checks import (ApiError, allowed_path, answer_errors_as_json, documented, failed_answer, json_body,
                             require_secret, service_of, uploaded_file)
from .schemas import (Accepted, Analysis, DatedPath, FromImageRequest, Health, ProcessPhotoRequest, Rendered,
                      RenderRequest, TakenDates, TakenDatesRequest, Version)
from .service import Service, b64
from .taken_date import read_taken

log = logging.getLogger("photo_sorter_ml")


# --- routes ----------------------------------------------------------------------------------------------------

guarded = APIRouter(dependencies=[Depends(require_secret)])  # need the shared secret, when one is set
public = APIRouter()


@guarded.post("/process-photo", status_code=202, response_model=Accepted,
              **documented(ProcessPhotoRequest, 400, 401, 403, 413, 422, 429, 503))
async def process_photo(request: Request):
    """Queues a photo; its analysis (or failure) is POSTed to `callbackUrl` as a `CallbackPayload`."""
    service = service_of(request)
    req = await json_body(request, ProcessPhotoRequest)
    real = allowed_path(service, req.path)
    if not service.callbacks_policy.allowed(req.callbackUrl):
        raise ApiError(403, f"callback URL origin is not on the allowlist: {req.callbackUrl}")
    service.pool.admit()
    service.spawn(service.process_job(req, real))
    return Accepted(accepted=True, queue_depth=service.pool.depth)


@guarded.post("/embeddings/from-image", response_model=Analysis,
              **documented(FromImageRequest, 400, 401, 403, 404, 413, 422, 429, 500, 503, multipart=True))
async def from_image(request: Request):
    """Analyses a photo given by path (JSON) or uploaded (multipart) and answers the analysis."""
    service = service_of(request)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        source, name = await uploaded_file(request, service.settings.max_upload_bytes)
        shown = name
    else:
        req = await json_body(request, FromImageRequest)
        source, name, shown = allowed_path(service, req.path), req.path, req.path
    service.pool.admit()
    result = await service.pool.analyse(source, name)
    if not result.get("ok"):
        return failed_answer(result, shown)
    return await service.analysis(result)


@guarded.post("/render", response_model=Rendered,
              **documented(RenderRequest, 400, 401, 403, 404, 413, 422, 429, 500, 503))
async def render(request: Request):
    """A preview of the photo and a face thumbnail per box, for photos analysed without them."""
    service = service_of(request)
    req = await json_body(request, RenderRequest)
    real = allowed_path(service, req.path)
    service.pool.admit()
    result = await service.pool.render(real, req.path, req.boxes, req.quarter_turns)
    if not result.get("ok"):
        return failed_answer(result, req.path)
    return Rendered(width=result["width"], height=result["height"], preview=b64(result["preview"]),
                    preview_width=result["preview_width"], preview_height=result["preview_height"],
                    thumbnails=[b64(t) for t in result["thumbnails"]])


def dated(service: Service, path: str) -> DatedPath:
    """One photo's /taken-dates entry: a path outside the roots or a file that is no readable image is its error."""
    taken, error = None, None
    try:
        taken = read_taken(allowed_path(service, path), path)
    except (ApiError, DecodeError) as e:
        error = e.message
    except Exception as e:  # a bug must not fail the other photos
        log.exception("reading the date taken of %s", path)
        error = f"internal error: {type(e).__name__}: {e}"
    return DatedPath(path=path, taken=asdict(taken) if taken else None, error=error)


@guarded.post("/taken-dates", response_model=TakenDates, **documented(TakenDatesRequest, 400, 401, 413, 422))
async def taken_dates(request: Request):
    """When each photo was taken, from its header and metadata (threads, not the model workers): for photos
    analysed before analyses reported it."""
    service = service_of(request)
    req = await json_body(request, TakenDatesRequest)
    return TakenDates(dates=await asyncio.gather(*(asyncio.to_thread(dated, service, p) for p in req.paths)))


@public.get("/health", response_model=Health, **documented(None))
async def health(request: Request):
    service = service_of(request)
    pool = service.pool
    return Health(status="ok" if pool.ready else ("error" if pool.load_error else "loading"),
                  model=service.settings.model, model_version=service.model_version,
                  embedding_dim=service.spec.embedding_dim, models_loaded=pool.ready, load_error=pool.load_error,
                  queue_depth=pool.depth, queue_waiting=pool.waiting, queue_capacity=pool.capacity,
                  workers=pool.workers, processed=service.processed, failed=service.failed,
                  callbacks_delivered=service.callbacks.delivered, callbacks_failed=service.callbacks.failed,
                  person_cache=service.persons.status(), uptime_s=round(time.time() - service.started, 1))


@public.get("/version", response_model=Version, **documented(None))
async def version(request: Request):
    service = service_of(request)
    spec, settings = service.spec, service.settings
    return Version(service="photo-sorter-ml", version=__version__, model=spec.name,
                   model_version=service.model_version, embedding_dim=spec.embedding_dim,
                   detector=spec.detector_name(settings.detector), detect_max_side=settings.detect_max_side,
                   upsample=settings.upsample,
                   weights_package={"name": spec.weights.distribution,
                                    "version": installed_version(spec.weights.distribution)},
                   weights=[w.as_dict() for w in service.weights], licence=spec.weights.licence,
                   runtime=runtime_info(spec.name, settings.runtime))


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def runtime_info(model: str, runtime: str) -> dict:
    """What runs the model: PHOTO_SORTER_ML_RUNTIME's value (`name`) and each ONNX model's engine with its version;
    dlib's version and build flags (they need the module). With OpenCV's version (resizing and alignment)."""
    if model == "dlib":
        from .models.dlib_models import dlib_info

        info = dlib_info()
        return {"name": "dlib", "version": info["version"], "dlib": info}
    return {"name": runtime,
            **{role: {"name": engine, "version": engine_version(engine)}
               for role, engine in zip(("detector", "embedder"), engines(runtime))},
            "opencv-python-headless": installed_version("opencv-python-headless")}


# --- the app ---------------------------------------------------------------------------------------------------

def lifespan_of(service: Service):
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings = service.settings
        if service.paths.allow_all:
            log.warning("PHOTO_SORTER_ALLOWED_ROOTS is not set: every readable path is allowed")
        if not settings.shared_secret:
            log.warning("PHOTO_SORTER_SHARED_SECRET is not set: requests are not authenticated")
        log.info("model %s (%s, %d-d) on %s, weights: %s", settings.model, service.model_version,
                 service.spec.embedding_dim, "dlib" if settings.model == "dlib" else settings.runtime,
                 ", ".join(f"{w.name} sha256 {w.sha256[:12]}" for w in service.weights))
        await service.start()
        if threading.current_thread() is threading.main_thread():  # served by uvicorn, not by a test's transport
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1,
                                                          lambda: service.spawn(_leave_at_once(service)))
        yield
        await service.stop()
    return lifespan


async def _leave_at_once(service: Service) -> None:
    """SIGUSR1: the parent has every result it asked for (`photo-sorter sort` at its end), so the workers stop and the
    process exits without the HTTP layer's graceful shutdown, which waits 0.1 s for connections nobody uses any more
    (SIGTERM still shuts down gracefully)."""
    log.info("stopping at once (SIGUSR1)")
    await service.pool.stop()
    logging.shutdown()
    os._exit(0)


def create_app(settings: Settings | None = None, service: Service | None = None) -> FastAPI:
    """The app around `service` (made from `settings` when not given; `__main__` makes it first, to start its
    workers early)."""
    service = service or Service(settings or Settings.from_env())
    app = FastAPI(title="photo-sorter ML service", version=__version__, lifespan=lifespan_of(service))
    app.state.service = service
    answer_errors_as_json(app)
    app.include_router(guarded)
    app.include_router(public)
    return app
