"""The wire schemas: every request the service reads and every answer and callback it sends, declared once.

The handlers and the callback build these models and send them with `exclude_unset` (`dump`): a field that was never
given is left out of the JSON, one given as None is sent as null. So a detection without a suggestion has no
`suggested_person_id`, a FAILED callback has no `taken` and no `quarter_turns`, and an analysis without a preview has
no `preview*` fields. The answers are declared as each route's `response_model`, so /openapi.json is generated from
the same classes that are sent.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

# Paths one POST /taken-dates may ask for.
MAX_TAKEN_PATHS = 500


def dump(model: BaseModel) -> dict[str, Any]:
    """`model` as the JSON object that goes on the wire: unset fields left out, None sent as null."""
    return model.model_dump(mode="json", exclude_unset=True)


# --- requests -----------------------------------------------------------------------------------------------

class ProcessPhotoRequest(BaseModel):
    """POST /process-photo: analyse this photo and POST the result (a `CallbackPayload`) to `callbackUrl`."""
    model_config = ConfigDict(extra="ignore")
    photo_id: int
    path: str = Field(min_length=1)
    callbackUrl: str = Field(min_length=1)
    callback_id: str | int | None = None


class FromImageRequest(BaseModel):
    """POST /embeddings/from-image with a JSON body (the other form is a multipart upload of the file)."""
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


class TakenDatesRequest(BaseModel):
    """POST /taken-dates: when each of these photos was taken."""
    model_config = ConfigDict(extra="ignore")
    paths: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=MAX_TAKEN_PATHS)


# --- answers --------------------------------------------------------------------------------------------------

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
    """One face. `embedding_norm` is the embedder's output length before `embedding` was L2-normalised (ArcFace: a
    face-quality signal, README "Endpoints"); `thumbnail` is absent when thumbnails are off; `suggested_person_id`
    and `similarity` only come with a suggestion (README, "Person suggestions"); `xmp_name` only when an XMP face
    region names the face, `source` only for a named region no detected face filled (README, "Face names from
    XMP")."""
    bbox: list[int] = Field(min_length=4, max_length=4)
    embedding: str = Field(description="base64 of little-endian float32 values")
    confidence: float
    embedding_norm: float | None = Field(
        None, description="L2 norm of the embedder's output before normalisation (ArcFace: low is an unsure face)")
    thumbnail: str | None = None
    suggested_person_id: int | None = None
    similarity: float | None = Field(None, description="the face's mean similarity to the suggested person's faces")
    xmp_name: str | None = Field(None, description="the name an XMP face region of the photo gives this face")
    source: Literal["detector", "xmp_region"] | None = Field(
        None, description="xmp_region: a named region no detected face filled, embedded from its box")


class NewPerson(BaseModel):
    """A face without a suggestion, as a candidate new person."""
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


class XmpRegions(BaseModel):
    """The XMP source whose face regions named the faces: counts of its named face regions, those that named a
    detected face, those added as faces, and the regions that named none (unnamed, not a face, unusable)."""
    source: Literal["sidecar", "embedded"]
    path: str | None = Field(description="the sidecar's path; null for the packet embedded in the photo")
    named_regions: int
    matched: int
    drawn: int
    ignored: int


class Meta(BaseModel):
    model_version: str
    timings: dict[str, float]


class Analysis(BaseModel):
    """POST /embeddings/from-image: one photo's faces; the callback (`CallbackPayload`) carries the same fields."""
    status: Literal["PROCESSED"]
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
    xmp: XmpRegions | None = Field(None, description="only when an XMP source of the photo has face regions")


class PhotoOfRequest(BaseModel):
    """Which photo a callback is about: as the /process-photo request named it."""
    photo_id: int
    path: str
    callback_id: str | int | None


class CallbackPayload(Analysis, PhotoOfRequest):
    """POST to a /process-photo request's `callbackUrl`: the analysis of the photo (PROCESSED), or why there is
    none (FAILED: `error`, no detections, no `taken`, no preview)."""
    status: Literal["PROCESSED", "FAILED"]
    error: str | None
    taken: Taken | None = Field(None, description="null when the photo carries no valid date; absent when FAILED")

    @classmethod
    def processed(cls, photo_id: int, path: str, callback_id: str | int | None,
                  analysis: Analysis) -> "CallbackPayload":
        return cls(photo_id=photo_id, path=path, callback_id=callback_id,
                   **{name: getattr(analysis, name) for name in analysis.model_fields_set})

    @classmethod
    def failed(cls, photo_id: int, path: str, callback_id: str | int | None, error: str,
               meta: Meta) -> "CallbackPayload":
        return cls(photo_id=photo_id, path=path, callback_id=callback_id, status="FAILED", error=error, width=None,
                   height=None, detections=[], new_persons=[], meta=meta)


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
    weights_package: dict[str, str | None]
    weights: list[dict[str, Any]]
    licence: str
    runtime: dict[str, Any]
