"""The first run installs only what the default model needs (issue 23): a fresh `scripts/install-ml.sh` makes a venv
without dlib that sorts with ArcFace, and `--with-dlib` then adds the dlib model (from the wheel that `scripts/test.sh`
compiled into the cache first, so this takes seconds, not the ~10 minute compile)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import harness

PHOTOS = {"obama": ["obama.jpg", "obama1.jpg"], "biden": ["biden.jpg", "biden2.jpg"]}


def _install(repo: Path, *args: str) -> str:
    """Runs the copied install-ml.sh; its log (stderr) when it succeeded."""
    r = subprocess.run(["bash", str(repo / "scripts/install-ml.sh"), *args], capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r.stderr


def _imports_dlib(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import dlib"], capture_output=True).returncode == 0


def _sort(python: Path, folder: Path, tmp_path: Path, name: str, *args: str) -> dict:
    rc, summary, _ = harness.run_sort(harness.find_binary(), folder, str(tmp_path / f"{name}.sqlite"),
                                      tmp_path / f"{name}.json", tmp_path / f"{name}.log", timeout=900,
                                      extra_args=args, PHOTO_SORTER_ML_PYTHON=str(python))
    assert rc == 0 and summary is not None, (tmp_path / f"{name}.log").read_text(errors="replace")[-4000:]
    return summary


def test_a_fresh_install_sorts_with_arcface_without_dlib_and_with_dlib_adds_it(tmp_path):
    repo = tmp_path / "repo"  # the install script and the ML service, nothing installed: a fresh checkout's
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(harness.REPO / "scripts/install-ml.sh", repo / "scripts/install-ml.sh")
    shutil.copytree(harness.REPO / "ml-service", repo / "ml-service",
                    ignore=shutil.ignore_patterns(".venv", "__pycache__", ".pytest_cache"))
    python = repo / "ml-service/.venv/bin/python"
    folder = tmp_path / "photos"
    for person, names in PHOTOS.items():
        (folder / person).mkdir(parents=True)
        for name in names:
            shutil.copy2(harness.faces_dir() / "face_recognition_examples" / person / name, folder / person / name)

    log = _install(repo)
    assert "dlib not installed: the default ArcFace model does not need it" in log, log[-3000:]
    assert python.is_file() and not _imports_dlib(python)
    summary = _sort(python, folder, tmp_path, "arcface")
    assert summary["model"] == "arcface" and summary["processed"] == 4 and summary["persons"] == 2, summary

    log = _install(repo, "--with-dlib")
    assert _imports_dlib(python), log[-3000:]
    summary = _sort(python, folder, tmp_path, "dlib", "--model", "dlib")
    assert summary["model"] == "dlib" and summary["processed"] == 4 and summary["persons"] == 2, summary
