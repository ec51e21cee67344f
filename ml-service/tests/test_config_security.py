"""An ML service reachable from other machines refuses to start without a secret and allowed roots."""
from __future__ import annotations

import pytest

from photo_sorter_ml.config import Settings

SECRET = "0123456789abcdef0123"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_listening_beyond_loopback_needs_the_shared_secret(host):
    with pytest.raises(ValueError, match="PHOTO_SORTER_SHARED_SECRET"):
        Settings.from_env({"PHOTO_SORTER_ML_HOST": host, "PHOTO_SORTER_ALLOWED_ROOTS": "/photos"})
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings.from_env({"PHOTO_SORTER_ML_HOST": host, "PHOTO_SORTER_ALLOWED_ROOTS": "/photos",
                           "PHOTO_SORTER_SHARED_SECRET": "short"})


def test_listening_beyond_loopback_needs_allowed_roots():
    with pytest.raises(ValueError, match="PHOTO_SORTER_ALLOWED_ROOTS"):
        Settings.from_env({"PHOTO_SORTER_ML_HOST": "0.0.0.0", "PHOTO_SORTER_SHARED_SECRET": SECRET})


def test_listening_beyond_loopback_with_secret_and_roots_starts():
    s = Settings.from_env({"PHOTO_SORTER_ML_HOST": "0.0.0.0", "PHOTO_SORTER_SHARED_SECRET": SECRET,
                           "PHOTO_SORTER_ALLOWED_ROOTS": "/photos"})
    assert s.shared_secret == SECRET and s.allowed_roots == ["/photos"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_neither(host):
    assert Settings.from_env({"PHOTO_SORTER_ML_HOST": host}).shared_secret is None
