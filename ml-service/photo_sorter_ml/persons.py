"""In-memory cache of the Swift service's person dump, for suggestions scored by the service's own identity rule.

The dump is listed from `GET {service}/person-dump?since_id=&limit=` (paged) and kept as an L2-normalised
float32 matrix of representatives, with each person's `coherence` and face count. It asks for `encoding=f16`
(float16 vectors, half the bytes: a 100,000-person dump of 512-d vectors is 144 MB instead of 288 MB; hints do not
need more precision) and decodes what the answer's `embedding_encoding` says (float32 from a service that does not
know the parameter). The listing carries the service's `epoch` and change `seq`; later refreshes ask only for what
changed since (`?since_seq=&epoch=`: persons whose representative changed, new ones, and `removed` ids of merged
or emptied persons), so merges and corrections reach the cache without listing every person again. An answer
with `reset` (the service reloaded), a service without epochs, or `full_refresh_s` passing lists everything
again. When the Swift service cannot be reached the cache simply stays as it is (empty at first): suggestions
are hints, the Swift side decides.

The rule is the service's, handed over in every dump answer (`identity_rule`; README, "Person suggestions"): a face
q joins a person of n faces when its mean similarity to the person's faces, `cos(q, representative) * coherence`,
is at least `match_threshold + small_person_margin / sqrt(n)`. Until an answer has carried a rule (a library without
a face model yet) nothing is suggested.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass

import httpx
import numpy as np

from .callback import SECRET_HEADER

log = logging.getLogger("photo_sorter_ml.persons")

PAGE_LIMIT = 5000


# Wire dtypes of the dump's `embedding_encoding` values.
ENCODINGS = {"f32": np.dtype("<f4"), "f16": np.dtype("<f2")}


def decode_embedding(b64: str, dim: int, encoding: str = "f32") -> np.ndarray | None:
    """The L2-normalised float32 vector, or None when it is not valid base64 of `dim` finite little-endian floats
    of `encoding` (f32 or f16)."""
    dtype = ENCODINGS.get(encoding)
    if dtype is None:
        return None
    try:
        raw = base64.b64decode(b64, validate=True)
    except Exception:
        return None
    if len(raw) != dim * dtype.itemsize:
        return None
    v = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n == 0:
        return None
    return v / n


@dataclass(frozen=True)
class IdentityRule:
    """The Swift service's rule for a face joining a person (`identity_rule` of its person dump)."""
    match_threshold: float
    small_person_margin: float

    @classmethod
    def of(cls, body: dict) -> "IdentityRule | None":
        """The rule a dump answer carries; None when it carries none (or a malformed one)."""
        rule = body.get("identity_rule")
        try:
            match, margin = float(rule["match_threshold"]), float(rule["small_person_margin"])
        except (KeyError, TypeError, ValueError):
            return None
        return cls(match, margin) if np.isfinite(match) and np.isfinite(margin) else None

    def thresholds(self, face_counts: np.ndarray) -> np.ndarray:
        """The mean similarity a face needs to join each person of `face_counts` faces, in float32 as the service
        computes it."""
        n = np.maximum(face_counts, 1).astype(np.float32)
        return np.float32(self.match_threshold) + np.float32(self.small_person_margin) / np.sqrt(n)

    def as_dict(self) -> dict:
        return {"match_threshold": self.match_threshold, "small_person_margin": self.small_person_margin}


@dataclass(frozen=True)
class Person:
    """What the cache keeps of one dump entry."""
    representative: np.ndarray  # unit length, float32
    coherence: float  # length of the person's mean face
    face_count: int


def person_of(entry: dict, dim: int, encoding: str) -> Person | None:
    """The dump entry as a Person; None when its representative is not a `dim`-d vector (another model's) or its
    coherence is missing or not a number in (0, 1]."""
    vector = decode_embedding(entry.get("representative_embedding") or "", dim, encoding)
    try:
        coherence = float(entry["coherence"])
    except (KeyError, TypeError, ValueError):
        return None
    if vector is None or not 0 < coherence <= 1.0 + 1e-4:
        return None
    meta = entry.get("meta")
    try:  # a count it does not give is 1: the largest margin, as the service's own max(n, 1)
        face_count = int(meta.get("face_count") or 1) if isinstance(meta, dict) else 1
    except (TypeError, ValueError):
        face_count = 1
    return Person(vector, coherence, max(1, face_count))


class PersonCache:
    def __init__(self, service_url: str, secret: str | None, dim: int, refresh_s: float, full_refresh_s: float,
                 timeout_s: float = 5.0):
        self.url = service_url.rstrip("/") + "/person-dump"
        self.secret = secret
        self.dim = dim  # the running model's; representatives of another length (another model) are skipped
        self.refresh_s = refresh_s
        self.full_refresh_s = full_refresh_s
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._persons: dict[int, Person] = {}
        self._ids = np.zeros((0,), dtype=np.int64)
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._coherence = np.zeros((0,), dtype=np.float32)
        self._face_counts = np.zeros((0,), dtype=np.int64)
        self.rule: IdentityRule | None = None
        self._answered_rule: IdentityRule | None = None  # of the latest answer, kept once its refresh succeeds
        self._epoch: str | None = None
        self._seq = 0
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

    async def refresh(self) -> None:
        async with self._lock:
            if not self.stale():
                return  # somebody else refreshed while we waited
            now = time.monotonic()
            self._last_attempt = now
            full = self._epoch is None or now - self._last_full >= self.full_refresh_s
            try:
                if not full:
                    changed, removed, seq, reset = await self._fetch_changes()
                    full = reset
                if full:
                    listed, epoch, seq = await self._fetch_listing()
            except Exception as e:
                self.last_error = f"{type(e).__name__}: {e}"
                level = logging.DEBUG if self._warned else logging.WARNING
                log.log(level, "person dump unavailable from %s (%s); suggestions use the %d cached persons",
                        self.url, self.last_error, self.size)
                self._warned = True
                return
            if full:
                self._persons, self._epoch, self._last_full = listed, epoch, now
            else:
                self._persons.update(changed)
                for pid in removed:
                    self._persons.pop(pid, None)
            self._seq = seq
            self.rule = self._answered_rule
            ids = sorted(self._persons)
            persons = [self._persons[i] for i in ids]
            self._ids = np.asarray(ids, dtype=np.int64)
            self._matrix = (np.stack([p.representative for p in persons]).astype(np.float32) if ids
                            else np.zeros((0, self.dim), dtype=np.float32))
            self._coherence = np.asarray([p.coherence for p in persons], dtype=np.float32)
            self._face_counts = np.asarray([p.face_count for p in persons], dtype=np.int64)
            self._last_ok = time.monotonic()
            self.last_error = None
            self._warned = False

    async def _get(self, params: dict) -> dict:
        headers = {"Accept-Encoding": "gzip", "Accept": "application/json"}
        if self.secret:
            headers[SECRET_HEADER] = self.secret
        r = await self._client.get(self.url, params={**params, "limit": PAGE_LIMIT, "encoding": "f16"}, headers=headers)
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
        body = r.json()
        self._answered_rule = IdentityRule.of(body)
        return body

    def _decode(self, body: dict, out: dict[int, Person]) -> int:
        """Adds the usable persons of the answer to `out`; returns how many were skipped."""
        skipped = 0
        encoding = body.get("embedding_encoding") or "f32"
        for entry in body.get("persons") or []:
            try:
                pid = int(entry["person_id"])
            except (KeyError, TypeError, ValueError):
                continue
            person = person_of(entry, self.dim, encoding)
            if person is not None:
                out[pid] = person
            else:
                skipped += 1
        return skipped

    def _warn_skipped(self, skipped: int) -> None:
        if skipped:
            log.warning("person dump: %d persons have no %d-d representative embedding (another model?) or no "
                        "coherence; they are not used for suggestions", skipped, self.dim)

    async def _fetch_listing(self) -> tuple[dict[int, Person], str | None, int]:
        """Every person, paged by id; the epoch and change sequence of the first page (changes made while paging
        come again with the next `_fetch_changes`)."""
        out: dict[int, Person] = {}
        skipped, since_id, epoch, seq = 0, 0, None, 0
        for page in range(10_000):  # bounded paging
            body = await self._get({"since_id": since_id})
            if page == 0:
                epoch, seq = body.get("epoch"), int(body.get("seq") or 0)
            skipped += self._decode(body, out)
            next_since = int(body.get("next_since_id") or since_id)
            if not body.get("has_more") or next_since <= since_id:
                break
            since_id = next_since
        self._warn_skipped(skipped)
        return out, epoch, seq

    async def _fetch_changes(self) -> tuple[dict[int, Person], list[int], int, bool]:
        """What changed since the last refresh: (changed persons, removed ids, next seq, reset)."""
        changed: dict[int, Person] = {}
        removed: list[int] = []
        skipped, seq = 0, self._seq
        for _ in range(10_000):
            body = await self._get({"since_seq": seq, "epoch": self._epoch})
            if body.get("reset"):
                return {}, [], 0, True
            skipped += self._decode(body, changed)
            for pid in body.get("removed") or []:
                changed.pop(int(pid), None)
                removed.append(int(pid))
            next_seq = int(body.get("seq") or seq)
            if not body.get("has_more") or next_seq <= seq:
                seq = max(seq, next_seq)
                break
            seq = next_seq
        self._warn_skipped(skipped)
        return changed, removed, seq, False

    def suggest(self, vectors: np.ndarray) -> list[tuple[int, float] | None]:
        """Per row of `vectors` (unit faces): the person it would join by the service's rule and its mean similarity
        to that person's faces, the best such person when several would take it; None when none would, or before
        the service has given a rule."""
        if len(vectors) == 0:
            return []
        if self.rule is None or self.size == 0:
            return [None] * len(vectors)
        scores = (vectors.astype(np.float32) @ self._matrix.T) * self._coherence[None, :]
        joins = scores >= self.rule.thresholds(self._face_counts)[None, :]
        best = np.argmax(np.where(joins, scores, -np.inf), axis=1)
        return [(int(self._ids[j]), float(scores[row, j])) if joins[row, j] else None for row, j in enumerate(best)]

    def status(self) -> dict:
        return {"persons": self.size, "epoch": self._epoch, "seq": self._seq,
                "age_s": None if self._last_ok is None else round(time.monotonic() - self._last_ok, 1),
                "error": self.last_error, "identity_rule": self.rule.as_dict() if self.rule else None}
