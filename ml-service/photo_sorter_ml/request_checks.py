"""What every request passes before its route's work (the shared secret, body limits, JSON, allowed roots) and how
errors are answered: always an `ErrorBody`, never a stack trace.
"""
from __future__ import annotations

import hmac
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .outgoing import SECRET_HEADER
from .schemas import ErrorBody, dump
from .service import Service
from .worker_pool import NotReady, QueueFull

# Bodies of the JSON endpoints are small (a path, up to 64 boxes): anything larger is refused unread.
MAX_JSON_BYTES = 1024 * 1024

Body = TypeVar("Body", bound=BaseModel)


# --- errors -----------------------------------------------------------------------------------------------------

class ApiError(Exception):
    """An answer other than the route's own: `status` with an `ErrorBody` of `message` and `extra`."""

    def __init__(self, status: int, message: str, headers: dict | None = None, **extra: Any):
        self.status, self.message, self.headers, self.extra = status, message, headers or {}, extra


def error_answer(status: int, message: str, headers: dict | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(dump(ErrorBody(error=message, **extra)), status_code=status, headers=headers)


def clean_errors(errors: list) -> list:
    """Pydantic's validation errors without the input values and context objects it adds."""
    return [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in errors]


def failed_answer(result: dict, shown: str) -> JSONResponse:
    """A worker's failure result as an answer: 404 for a missing file, 500 for our own errors, else 422."""
    kind = result.get("error_kind")
    status = {"missing": 404, "internal": 500}.get(kind, 422)
    return error_answer(status, result.get("error") or "unknown error", kind=kind, path=shown)


def answer_errors_as_json(app: FastAPI) -> None:
    """Every error is an `ErrorBody`; a busy or loading pool says when to come back."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_answer(exc.status, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(NotReady)
    async def _not_ready(request: Request, exc: NotReady):
        return error_answer(503, exc.message, {"Retry-After": "2"})

    @app.exception_handler(QueueFull)
    async def _queue_full(request: Request, exc: QueueFull):
        return error_answer(429, exc.message, {"Retry-After": str(exc.retry_after)}, queue_depth=exc.depth)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return error_answer(422, "invalid request", detail=clean_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error_answer(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # The traceback goes to the log (Starlette re-raises to the server after this answer), never to the client.
        return error_answer(500, "internal error; the ML service log has the details")


# --- what every request passes -------------------------------------------------------------------------------

def service_of(request: Request) -> Service:
    return request.app.state.service


async def require_secret(request: Request) -> None:
    secret = service_of(request).settings.shared_secret
    if secret and not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), secret.encode()):
        raise ApiError(401, f"missing or wrong {SECRET_HEADER} header")


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


async def json_body(request: Request, model: type[Body]) -> Body:
    """The body as `model`: 400 when it is empty or not JSON, 422 when it does not fit. Read here rather than by
    FastAPI so that a body too large is refused unread (413) and each of these has its own answer."""
    raw = await limited_body(request, MAX_JSON_BYTES)
    if not raw:
        raise ApiError(400, "request body is empty; expected JSON")
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        errs = e.errors()
        if any(err.get("type") == "json_invalid" for err in errs):
            raise ApiError(400, "malformed JSON", detail=clean_errors(errs))
        raise ApiError(422, "invalid request", detail=clean_errors(errs))


async def uploaded_file(request: Request, limit: int) -> tuple[bytes, str]:
    """The `file` part of a multipart body and its name; 413 beyond `limit` bytes, refused unread when
    Content-Length already says so (with 1 MiB of slack for the multipart framing)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + MAX_JSON_BYTES:
        raise ApiError(413, f"upload larger than {limit} bytes")
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ApiError(422, "multipart body needs a 'file' part")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"upload larger than {limit} bytes")
    return data, upload.filename or "upload"


def allowed_path(service: Service, path: str) -> str:
    """The real path of a requested file, 403 when it lies outside the allowed roots."""
    real = service.paths.resolve(path)
    if real is None:
        raise ApiError(403, f"path is outside the allowed roots: {path}")
    return real


def documented(body: type[BaseModel] | None, *errors: int, multipart: bool = False) -> dict:
    """Route options for what FastAPI cannot see: the body a handler reads itself and its error answers (for the
    document), and answers that leave out what was never set, as `schemas.dump` does."""
    extra: dict[str, Any] = {"responses": {code: {"model": ErrorBody} for code in errors},
                             "response_model_exclude_unset": True}
    if body is not None:
        content: dict[str, Any] = {"application/json": {"schema": body.model_json_schema()}}
        if multipart:
            content["multipart/form-data"] = {"schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary"}}}}
        extra["openapi_extra"] = {"requestBody": {"required": True, "content": content}}
    return extra
