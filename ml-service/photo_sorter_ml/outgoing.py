"""The service's outgoing HTTP (result callbacks, person-dump reads): an aiohttp session per client, opened on first
use inside the event loop.

aiohttp, not httpx: a callback (~30 KB of JSON) costs the service's main process ~0.15 ms of CPU with aiohttp against
~0.7 ms with httpx, and that process shares the cores with the workers; `sort` on the test photos runs 3.5% faster
(bench/RESULTS.md, "Issue 23, second pass").
"""
from __future__ import annotations

import aiohttp

SECRET_HEADER = "X-Photo-Sorter-Secret"


class Session:
    """One keep-alive aiohttp session with a total timeout per request; `get()` opens it when first needed."""

    def __init__(self, timeout_s: float):
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
