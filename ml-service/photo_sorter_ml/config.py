"""Settings from the environment (PHOTO_SORTER_* variables). Read once at start-up."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .models import DEFAULT_MODEL, model_spec
from .models.runtimes import DEFAULT_RUNTIME, engines

log = logging.getLogger("photo_sorter_ml")

DEFAULT_SERVICE_URL = "http://127.0.0.1:8080"


def origin_of(url: str) -> str | None:
    """`scheme://host:port` with the default port made explicit; None when the URL has no host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = (parts.scheme or "").lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return None
    if port is None:
        port = 443 if scheme == "https" else 80
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _int(env: dict, name: str, default: int | None, minimum: int | None = None) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: dict, name: str, default: float | None) -> float | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _compile_cache(env: dict) -> str | None:
    """PHOTO_SORTER_ML_COMPILE_CACHE: a folder; `off` (or empty) for none. Default: photo-sorter/openvino in the
    user's cache folder (XDG_CACHE_HOME, else ~/.cache), next to what install-ml.sh caches."""
    raw = env.get("PHOTO_SORTER_ML_COMPILE_CACHE")
    if raw is not None:
        raw = raw.strip()
        return None if raw.lower() in ("", "off") else os.path.abspath(os.path.expanduser(raw))
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "photo-sorter", "openvino")


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8001
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    queue_size: int = 0  # 0 -> 4 x workers
    model: str = DEFAULT_MODEL  # arcface | dlib
    runtime: str = DEFAULT_RUNTIME  # mixed | openvino | onnxruntime: what runs arcface's ONNX files
    model_dir: str | None = None  # folder of the model's weight files; None = the weights package's
    detector: str = "hog"  # hog | cnn, dlib only
    # None -> the model's default (models.MODELS)
    upsample: int | None = None
    detect_max_side: int | None = None
    upsample_max_side: int = 800
    max_pixels: int = 89_478_485  # Pillow's own default
    callback_retries: int = 5
    callback_backoff_s: float = 0.5
    callback_timeout_s: float = 10.0
    service_url: str = DEFAULT_SERVICE_URL
    shared_secret: str | None = None
    allowed_roots: list[str] | None = None  # None = everything (warned)
    callback_allowlist: list[str] = field(default_factory=list)
    dump_refresh_s: float = 5.0
    dump_full_refresh_s: float = 3600.0
    max_upload_bytes: int = 200 * 1024 * 1024
    thumbnail_size: int = 112  # face thumbnails, px square; 0 = no thumbnails and no previews
    preview_max_side: int = 640  # photo previews, longest side in px
    compile_cache: str | None = None  # folder of OpenVINO's compiled models; None = compile at every start

    def __post_init__(self) -> None:
        if not is_loopback(self.host):
            # Reachable from other machines: every request must carry the secret, and only the photo folders
            # may be read (otherwise anyone on the network could read any file through /process-photo).
            if not self.shared_secret or len(self.shared_secret) < 16:
                raise ValueError(f"PHOTO_SORTER_ML_HOST={self.host} is reachable from other machines: set "
                                 "PHOTO_SORTER_SHARED_SECRET (at least 16 characters) on the ML service and the service")
            if self.allowed_roots is None:
                raise ValueError(f"PHOTO_SORTER_ML_HOST={self.host} is reachable from other machines: set "
                                 "PHOTO_SORTER_ALLOWED_ROOTS to the photo folders")
        if self.thumbnail_size != 0 and not 32 <= self.thumbnail_size <= 512:
            raise ValueError("PHOTO_SORTER_ML_THUMBNAIL_SIZE must be 0 (off) or between 32 and 512, "
                             f"got {self.thumbnail_size}")
        if not 64 <= self.preview_max_side <= 4096:
            raise ValueError("PHOTO_SORTER_ML_PREVIEW_MAX_SIDE must be between 64 and 4096, "
                             f"got {self.preview_max_side}")
        if self.queue_size <= 0:
            self.queue_size = 4 * self.workers
        if self.detector not in ("hog", "cnn"):
            raise ValueError(f"PHOTO_SORTER_ML_DETECTOR must be hog or cnn, got {self.detector!r}")
        spec = model_spec(self.model)
        engines(self.runtime)  # ValueError for an unknown value
        if self.upsample is None:
            self.upsample = spec.upsample
        if self.detect_max_side is None:
            self.detect_max_side = spec.detect_max_side
        if not self.callback_allowlist:
            origin = origin_of(self.service_url)
            self.callback_allowlist = [origin] if origin else []

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        roots_raw = env.get("PHOTO_SORTER_ALLOWED_ROOTS")
        roots = None
        if roots_raw is not None and roots_raw.strip():
            roots = [r for r in roots_raw.split(os.pathsep) if r.strip()]
        allow_raw = env.get("PHOTO_SORTER_CALLBACK_ALLOWLIST", "")
        allowlist = []
        for item in allow_raw.split(","):
            if item.strip():
                origin = origin_of(item)
                if origin is None:
                    raise ValueError(f"PHOTO_SORTER_CALLBACK_ALLOWLIST entry is not an http(s) origin: {item!r}")
                allowlist.append(origin)
        secret = env.get("PHOTO_SORTER_SHARED_SECRET") or None
        return cls(
            host=env.get("PHOTO_SORTER_ML_HOST", "127.0.0.1"),
            port=_int(env, "PHOTO_SORTER_ML_PORT", 8001, 0),
            workers=_int(env, "PHOTO_SORTER_ML_WORKERS", os.cpu_count() or 1, 1),
            queue_size=_int(env, "PHOTO_SORTER_ML_QUEUE_SIZE", 0, 0),
            model=env.get("PHOTO_SORTER_ML_MODEL", "").strip().lower() or DEFAULT_MODEL,
            runtime=env.get("PHOTO_SORTER_ML_RUNTIME", "").strip().lower() or DEFAULT_RUNTIME,
            model_dir=env.get("PHOTO_SORTER_ML_MODEL_DIR") or None,
            detector=env.get("PHOTO_SORTER_ML_DETECTOR", "hog").strip().lower() or "hog",
            upsample=_int(env, "PHOTO_SORTER_ML_UPSAMPLE", None, 0),
            detect_max_side=_int(env, "PHOTO_SORTER_ML_DETECT_MAX_SIDE", None, 0),
            upsample_max_side=_int(env, "PHOTO_SORTER_ML_UPSAMPLE_MAX_SIDE", cls.upsample_max_side, 0),
            max_pixels=_int(env, "PHOTO_SORTER_ML_MAX_PIXELS", cls.max_pixels, 1),
            callback_retries=_int(env, "PHOTO_SORTER_ML_CALLBACK_RETRIES", 5, 0),
            callback_backoff_s=_float(env, "PHOTO_SORTER_ML_CALLBACK_BACKOFF_S", 0.5),
            callback_timeout_s=_float(env, "PHOTO_SORTER_ML_CALLBACK_TIMEOUT_S", 10.0),
            service_url=env.get("PHOTO_SORTER_SERVICE_URL", DEFAULT_SERVICE_URL).rstrip("/"),
            shared_secret=secret,
            allowed_roots=roots,
            callback_allowlist=allowlist,
            dump_refresh_s=_float(env, "PHOTO_SORTER_ML_DUMP_REFRESH_S", 5.0),
            dump_full_refresh_s=_float(env, "PHOTO_SORTER_ML_DUMP_FULL_REFRESH_S", 3600.0),
            max_upload_bytes=_int(env, "PHOTO_SORTER_ML_MAX_UPLOAD_BYTES", 200 * 1024 * 1024, 1),
            thumbnail_size=_int(env, "PHOTO_SORTER_ML_THUMBNAIL_SIZE", cls.thumbnail_size),
            preview_max_side=_int(env, "PHOTO_SORTER_ML_PREVIEW_MAX_SIDE", cls.preview_max_side),
            compile_cache=_compile_cache(env),
        )
