"""In-memory cache of the Swift service's person dump, for local nearest-neighbour suggestions.

The dump is fetched from `GET {service}/person-dump?since_id=&limit=` (paged), kept as an L2-normalised
float32 matrix, refreshed incrementally (since_id) when stale and fully now and then (representatives
change as persons grow). When the Swift service cannot be reached the cache simply stays as it is
(empty at first): suggestions are hints, the Swift side decides.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time

import httpx
import numpy as np

from .callback import SECRET_HEADER

log = logging.getLogger("photo_sorter_ml.persons")

PAGE_LIMIT = 5000


def decode_embedding(b64: str, dim: int) -> np.ndarray | None:
    """The L2-normalised vector, or None when it is not valid base64 of `dim` finite little-endian float32s."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except Exception:
        return None
    if len(raw) != dim * 4:
        return None
    v = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n == 0:
        return None
    return v / n


class PersonCache:
    def __init__(self, service_url: str, secret: str | None, dim: int, refresh_s: float, full_refresh_s: float,
                 timeout_s: float = 5.0):
        self.url = service_url.rstrip("/") + "/person-dump"
        self.secret = secret
        self.dim = dim  # the running model's; representatives of another length (another model) are skipped
        self.refresh_s = refresh_s
        self.full_refresh_s = full_refresh_s
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._vectors: dict[int, np.ndarray] = {}
        self._ids = np.zeros((0,), dtype=np.int64)
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._since_id = 0
        self._last_attempt = 0.0
        self._last_full = 0.0
        self._last_ok: float | None = None
        self._lock = asyncio.Lock()
        self._warned = False
        self.last_error: str | None = None

    @property
    def size(self) -> int:
        return len(self._ids)

    async def aclose(self) -> None:
        await self._client.aclose()

    def stale(self) -> bool:
        return time.monotonic() - self._last_attempt >= self.refresh_s

    async def ensure_fresh(self) -> None:
        if self.stale():
            await self.refresh()

    async def refresh(self, full: bool = False) -> None:
        async with self._lock:
            if not full and not self.stale():
                return  # somebody else refreshed while we waited
            now = time.monotonic()
            self._last_attempt = now
            full = full or self._last_full == 0.0 or now - self._last_full >= self.full_refresh_s
            try:
                fetched, since = await self._fetch(0 if full else self._since_id)
            except Exception as e:
                self.last_error = f"{type(e).__name__}: {e}"
                level = logging.DEBUG if self._warned else logging.WARNING
                log.log(level, "person dump unavailable from %s (%s); suggestions use the %d cached persons",
                        self.url, self.last_error, self.size)
                self._warned = True
                return
            if full:
                self._vectors = {}
                self._last_full = now
            self._vectors.update(fetched)
            self._since_id = max(self._since_id if not full else 0, since)
            ids = sorted(self._vectors)
            self._ids = np.asarray(ids, dtype=np.int64)
            self._matrix = (np.stack([self._vectors[i] for i in ids]).astype(np.float32) if ids
                            else np.zeros((0, self.dim), dtype=np.float32))
            self._last_ok = time.monotonic()
            self.last_error = None
            self._warned = False

    async def _fetch(self, since_id: int) -> tuple[dict[int, np.ndarray], int]:
        headers = {"Accept-Encoding": "gzip", "Accept": "application/json"}
        if self.secret:
            headers[SECRET_HEADER] = self.secret
        out: dict[int, np.ndarray] = {}
        skipped = 0
        for _ in range(10_000):  # bounded paging
            r = await self._client.get(self.url, params={"since_id": since_id, "limit": PAGE_LIMIT}, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
            body = r.json()
            for p in body.get("persons") or []:
                try:
                    pid = int(p["person_id"])
                except (KeyError, TypeError, ValueError):
                    continue
                v = decode_embedding(p.get("representative_embedding") or "", self.dim)
                if v is not None:
                    out[pid] = v
                else:
                    skipped += 1
            next_since = int(body.get("next_since_id") or since_id)
            has_more = bool(body.get("has_more"))
            if not has_more or next_since <= since_id:
                since_id = max(since_id, next_since)
                break
            since_id = next_since
        if skipped:
            log.warning("person dump: %d representative embeddings are not %d-d float32 vectors (another model?); "
                        "they are not used for suggestions", skipped, self.dim)
        return out, since_id

    def suggest(self, vectors: np.ndarray, threshold: float) -> list[tuple[int, float] | None]:
        """Best person and cosine similarity per row when >= threshold, else None."""
        if len(vectors) == 0:
            return []
        if self.size == 0:
            return [None] * len(vectors)
        sims = vectors.astype(np.float32) @ self._matrix.T
        best = np.argmax(sims, axis=1)
        out: list[tuple[int, float] | None] = []
        for row, j in enumerate(best):
            s = float(sims[row, j])
            out.append((int(self._ids[j]), s) if s >= threshold else None)
        return out

    def status(self) -> dict:
        return {"persons": self.size, "since_id": self._since_id,
                "age_s": None if self._last_ok is None else round(time.monotonic() - self._last_ok, 1),
                "error": self.last_error}
