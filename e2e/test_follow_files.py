"""The library follows the files, through `photo-sorter sort` with the real ML service it starts, and the CLI's
`prune`: a folder tidied into a subfolder is moved (no analysis, same persons), a deleted photo is missing and
`prune` deletes it, and a sorted folder that is gone is an unplugged drive (exit 3, nothing marked missing).

Photos come from ../shared/testdata/faces/face_recognition_examples, copied into a temporary folder.
"""
from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

EXAMPLES = harness.faces_dir() / "face_recognition_examples"

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"{EXAMPLES} not present")


def rows(database: Path) -> dict[str, tuple[int, str]]:
    """Every photo row: path → (id, status)."""
    with sqlite3.connect(database) as db:
        return {path: (photo_id, status) for photo_id, path, status in db.execute("SELECT id, path, status FROM photos")}


def printed_json(log: Path) -> dict:
    """The JSON object a command printed (its notice line on standard error shares the log)."""
    text = log.read_text()
    return json.JSONDecoder().raw_decode(text[text.index("{"):])[0]


def test_tidied_deleted_and_unplugged_folders(tmp_path):
    folder = tmp_path / "library"
    for person in ("obama", "biden"):
        harness.copy_tree(EXAMPLES / person, folder)
    database = tmp_path / "library.sqlite"
    binary = harness.find_binary()

    def sort(name: str):
        return harness.run_sort(binary, folder, str(database), tmp_path / f"{name}.json", tmp_path / f"{name}.log", timeout=900)

    rc, first, _ = sort("first")
    assert rc == 0, (tmp_path / "first.log").read_text()[-3000:]
    before = rows(database)
    assert first["processed"] == len(before) > 0

    # Tidy up: everything into 2024/, as people do.
    tidy = folder / "2024"
    tidy.mkdir()
    for path in list(folder.iterdir()):
        if path != tidy:
            path.rename(tidy / path.name)
    rc, second, _ = sort("second")
    assert rc == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert second["moved"] == len(before), second
    assert second["missing"] == 0 and second["copies"] == 0
    assert second["ml_seconds"] == 0, "nothing was analysed again"
    assert second["persons"] == first["persons"]
    after = rows(database)
    assert len(after) == len(before), "no new row"
    assert sorted(photo_id for photo_id, _ in after.values()) == sorted(photo_id for photo_id, _ in before.values())
    assert "files:    %d moved" % len(before) in (tmp_path / "second.log").read_text()

    # Delete one photo: missing, then pruned by the CLI.
    victim = sorted(tidy.iterdir())[0]
    victim_id = after[str(victim.resolve())][0]
    victim.unlink()
    rc, third, _ = sort("third")
    assert rc == 0 and third["missing"] == 1, third
    assert rows(database)[str(victim.resolve())] == (victim_id, "MISSING")
    rc, _ = harness.run_cli([binary, "prune", "--older-than", "0", "--dry-run", "--database", database], tmp_path / "dry.log")
    dry = printed_json(tmp_path / "dry.log")
    assert rc == 0 and dry["photos"] == 1 and dry["dry_run"] is True, dry
    assert str(victim.resolve()) in rows(database)
    rc, _ = harness.run_cli([binary, "prune", "--older-than", "0", "--database", database], tmp_path / "prune.log")
    assert rc == 0, (tmp_path / "prune.log").read_text()
    assert "deleted 1 missing photos" in (tmp_path / "prune.log").read_text()
    assert str(victim.resolve()) not in rows(database)
    rc, _ = harness.run_cli([binary, "prune", "--older-than", "soon", "--database", database], tmp_path / "bad.log")
    assert rc != 0 and "not an age" in (tmp_path / "bad.log").read_text()

    # Unplug the drive: the folder is gone; nothing is marked missing and sort says why.
    away = tmp_path / "unplugged"
    folder.rename(away)
    rc, _, _ = sort("fourth")
    log = (tmp_path / "fourth.log").read_text()
    assert rc == 3, log[-3000:]
    assert "root unavailable" in log
    assert all(status != "MISSING" for _, status in rows(database).values())
