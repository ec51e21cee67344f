"""Delivers results to the Swift service's callback URL, with retries and exponential backoff."""
from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from .outgoing import SECRET_HEADER, Session
from .schemas import CallbackPayload, dump

log = logging.getLogger("photo_sorter_ml.callback")

MAX_BACKOFF_S = 30.0


class CallbackClient:
    """POSTs JSON. Retries on connection errors, timeouts, 5xx and 429 (honouring Retry-After, capped);
    gives up at once on any other 4xx (the receiver rejected the payload: retrying cannot help)."""

    def __init__(self, retries: int, backoff_s: float, timeout_s: float, secret: str | None):
        self.retries = max(0, retries)
        self.backoff_s = max(0.0, backoff_s)
        self.secret = secret
        self._session = Session(timeout_s)
        self.delivered = 0
        self.failed = 0

    async def aclose(self) -> None:
        await self._session.aclose()

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay = min(MAX_BACKOFF_S, self.backoff_s * (2 ** attempt))
        if retry_after:
            try:
                delay = max(delay, min(MAX_BACKOFF_S, float(retry_after)))
            except ValueError:
                pass
        return delay

    async def send(self, url: str, payload: CallbackPayload) -> bool:
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers[SECRET_HEADER] = self.secret
        what = f"photo {payload.photo_id} ({payload.status})"
        body = json.dumps(dump(payload)).encode()
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                async with self._session.get().post(url, data=body, headers=headers, allow_redirects=False) as response:
                    code, answer = response.status, await response.text(errors="replace")
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                if 200 <= code < 300:
                    self.delivered += 1
                    if attempt:
                        log.info("callback for %s delivered after %d retries", what, attempt)
                    return True
                if code == 429 or code >= 500:
                    reason = f"HTTP {code}"
                else:
                    self.failed += 1
                    log.error("callback for %s rejected with HTTP %d, not retrying: %s", what, code,
                              answer[:500])
                    return False
            if attempt < self.retries:
                delay = self._delay(attempt, retry_after)
                log.warning("callback for %s to %s failed (%s); retry %d/%d in %.2fs", what, url, reason,
                            attempt + 1, self.retries, delay)
                await asyncio.sleep(delay)
            else:
                log.error("callback for %s to %s failed (%s); giving up after %d retries", what, url, reason,
                          self.retries)
        self.failed += 1
        return False
