"""In-memory cache of the Swift service's person dump, for suggestions scored by the service's own identity rule.

A person has one or more looks: its own, and one per person merged into it (a merged person's faces keep their own
mean, now owned by the person they were merged into). The dump lists one entry per look: `look_id` (absent from an
older service: the person's id, one look per person), the owning `person_id`, the look's `representative_embedding`,
`coherence` and `meta.face_count` (of its own faces only). It is listed from
`GET {service}/person-dump?since_id=&limit=` (paged by look id) and kept as an L2-normalised float32 matrix of
representatives, one row per look with its owner, coherence and face count. It asks for `encoding=f16`
(float16 vectors, half the bytes: a 100,000-look dump of 512-d vectors is 144 MB instead of 288 MB; hints do not
need more precision) and decodes what the answer's `embedding_encoding` says (float32 from a service that does not
know the parameter). The listing carries the service's `epoch` and change `seq`; later refreshes ask only for what
changed since (`?since_seq=&epoch=`: looks whose representative or owner changed, a merged person's look coming
again with its new owner, new ones, and `removed` ids of looks left without faces), so merges and corrections reach
the cache without listing every look again. An answer with `reset` (the service reloaded), a service without
epochs, or `full_refresh_s` passing lists everything again. When the Swift service cannot be reached the cache
simply stays as it is (empty at first): suggestions are hints, the Swift side decides.

The rule is the service's, handed over in every dump answer (`identity_rule`; README, "Person suggestions"): a face
q joins a look of n faces when its mean similarity to the look's faces, `cos(q, representative) * coherence`,
is at least `match_threshold + small_person_margin / sqrt(n)`, and joins a person when it joins any of its looks;
the person's score is its best joining look's. Until an answer has carried a rule (a library without a face model
yet) nothing is suggested.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass

import numpy as np

from .outgoing import SECRET_HEADER, Session

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
        """The mean similarity a face needs to join each look of `face_counts` faces, in float32 as the service
        computes it."""
        n = np.maximum(face_counts, 1).astype(np.float32)
        return np.float32(self.match_threshold) + np.float32(self.small_person_margin) / np.sqrt(n)

    def as_dict(self) -> dict:
        return {"match_threshold": self.match_threshold, "small_person_margin": self.small_person_margin}


@dataclass(frozen=True)
class Look:
    """What the cache keeps of one dump entry: one look of a person."""
    person_id: int  # the person that owns the look
    representative: np.ndarray  # unit length, float32
    coherence: float  # length of the look's mean face
    face_count: int


def look_of(entry: dict, person_id: int, dim: int, encoding: str) -> Look | None:
    """The dump entry as a look of `person_id`; None when its representative is not a `dim`-d vector (another
    model's) or its coherence is missing or not a number in (0, 1]."""
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
    return Look(person_id, vector, coherence, max(1, face_count))


class PersonCache:
    def __init__(self, service_url: str, secret: str | None, dim: int, refresh_s: float, full_refresh_s: float,
                 timeout_s: float = 5.0):
        self.url = service_url.rstrip("/") + "/person-dump"
        self.secret = secret
        self.dim = dim  # the running model's; representatives of another length (another model) are skipped
        self.refresh_s = refresh_s
        self.full_refresh_s = full_refresh_s
        self._session = Session(timeout_s)
        self._looks: dict[int, Look] = {}  # by look id
        self._owners = np.zeros((0,), dtype=np.int64)  # per matrix row: the person owning that look
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
    def look_count(self) -> int:
        return len(self._owners)

    @property
    def person_count(self) -> int:
        """Distinct persons owning the cached looks."""
        return len(np.unique(self._owners))

    async def aclose(self) -> None:
        await self._session.aclose()

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
                log.log(level, "person dump unavailable from %s (%s); suggestions use the %d cached looks",
                        self.url, self.last_error, self.look_count)
                self._warned = True
                return
            if full:
                self._looks, self._epoch, self._last_full = listed, epoch, now
            else:
                self._looks.update(changed)
                for look_id in removed:
                    self._looks.pop(look_id, None)
            self._seq = seq
            self.rule = self._answered_rule
            looks = [self._looks[i] for i in sorted(self._looks)]
            self._owners = np.asarray([look.person_id for look in looks], dtype=np.int64)
            self._matrix = (np.stack([look.representative for look in looks]).astype(np.float32) if looks
                            else np.zeros((0, self.dim), dtype=np.float32))
            self._coherence = np.asarray([look.coherence for look in looks], dtype=np.float32)
            self._face_counts = np.asarray([look.face_count for look in looks], dtype=np.int64)
            self._last_ok = time.monotonic()
            self.last_error = None
            self._warned = False

    async def _get(self, params: dict) -> dict:
        headers = {"Accept-Encoding": "gzip", "Accept": "application/json"}
        if self.secret:
            headers[SECRET_HEADER] = self.secret
        query = {**{k: str(v) for k, v in params.items() if v is not None}, "limit": str(PAGE_LIMIT), "encoding": "f16"}
        async with self._session.get().get(self.url, params=query, headers=headers) as r:
            data = await r.read()  # gzip is undone by aiohttp
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {data[:200].decode(errors='replace')}")
        body = json.loads(data)
        self._answered_rule = IdentityRule.of(body)
        return body

    def _decode(self, body: dict, out: dict[int, Look]) -> int:
        """Adds the usable looks of the answer to `out`, by look id; returns how many were skipped."""
        skipped = 0
        encoding = body.get("embedding_encoding") or "f32"
        for entry in body.get("persons") or []:
            try:
                person_id = int(entry["person_id"])
                look_id = person_id if entry.get("look_id") is None else int(entry["look_id"])
            except (KeyError, TypeError, ValueError):
                continue
            look = look_of(entry, person_id, self.dim, encoding)
            if look is not None:
                out[look_id] = look
            else:
                skipped += 1
        return skipped

    def _warn_skipped(self, skipped: int) -> None:
        if skipped:
            log.warning("person dump: %d looks have no %d-d representative embedding (another model?) or no "
                        "coherence; they are not used for suggestions", skipped, self.dim)

    async def _fetch_listing(self) -> tuple[dict[int, Look], str | None, int]:
        """Every look, paged by look id; the epoch and change sequence of the first page (changes made while paging
        come again with the next `_fetch_changes`)."""
        out: dict[int, Look] = {}
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

    async def _fetch_changes(self) -> tuple[dict[int, Look], list[int], int, bool]:
        """What changed since the last refresh: (changed looks by look id, removed look ids, next seq, reset)."""
        changed: dict[int, Look] = {}
        removed: list[int] = []
        skipped, seq = 0, self._seq
        for _ in range(10_000):
            body = await self._get({"since_seq": seq, "epoch": self._epoch})
            if body.get("reset"):
                return {}, [], 0, True
            skipped += self._decode(body, changed)
            for look_id in body.get("removed") or []:
                changed.pop(int(look_id), None)
                removed.append(int(look_id))
            next_seq = int(body.get("seq") or seq)
            if not body.get("has_more") or next_seq <= seq:
                seq = max(seq, next_seq)
                break
            seq = next_seq
        self._warn_skipped(skipped)
        return changed, removed, seq, False

    def suggest(self, vectors: np.ndarray) -> list[tuple[int, float] | None]:
        """Per row of `vectors` (unit faces): the person owning the best look it would join by the service's rule
        and its mean similarity to that look's faces; None when it would join none, or before the service has
        given a rule."""
        if len(vectors) == 0:
            return []
        if self.rule is None or self.look_count == 0:
            return [None] * len(vectors)
        scores = (vectors.astype(np.float32) @ self._matrix.T) * self._coherence[None, :]
        joins = scores >= self.rule.thresholds(self._face_counts)[None, :]
        best = np.argmax(np.where(joins, scores, -np.inf), axis=1)
        return [(int(self._owners[j]), float(scores[row, j])) if joins[row, j] else None
                for row, j in enumerate(best)]

    def status(self) -> dict:
        return {"persons": self.person_count, "looks": self.look_count, "epoch": self._epoch, "seq": self._seq,
                "age_s": None if self._last_ok is None else round(time.monotonic() - self._last_ok, 1),
                "error": self.last_error, "identity_rule": self.rule.as_dict() if self.rule else None}
