"""Path roots and callback allowlist checks."""
from __future__ import annotations

import os

from .config import origin_of


class PathPolicy:
    """Only paths whose realpath lies under one of the (realpath-resolved) roots may be read."""

    def __init__(self, roots: list[str] | None):
        self.roots = None if roots is None else [os.path.realpath(os.path.expanduser(r)) for r in roots]

    @property
    def allow_all(self) -> bool:
        return self.roots is None

    def resolve(self, path: str) -> str | None:
        """The resolved path when allowed, else None. Symlinks and `..` are resolved first."""
        if not isinstance(path, str) or not path or "\x00" in path:
            return None
        real = os.path.realpath(os.path.abspath(os.path.expanduser(path)))
        if self.roots is None:
            return real
        for root in self.roots:
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return real
        return None


class CallbackPolicy:
    """Callback URLs must have an origin (scheme, host, port) on the allowlist; hosts compare literally."""

    def __init__(self, allowlist: list[str]):
        self.origins = {o for o in (origin_of(x) for x in allowlist) if o}

    def allowed(self, url: str) -> bool:
        origin = origin_of(url)
        return origin is not None and origin in self.origins
