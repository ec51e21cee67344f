"""File-type sniffing, held together with the Swift service's: `decode.sniff` runs over every case of
Tests/Fixtures/file-kinds.json, the heads of every kind of file either side knows with what the service's
`FileContent.identify` (Sources/PhotoSorterCore/PhotoFormat.swift) answers. The service's tests read the same file.

The fixture speaks the service's vocabulary; `sniff` names things so:
- photos: the same names as `PhotoFormat` (jpeg, png, gif, bmp, webp, tiff, cr2, heif; HEIC and AVIF are both
  heif), except `nef`: a NEF's head is a TIFF header, which the service calls nef when the extension says .nef.
  `sniff` never looks at the extension and says tiff; `decode` then sends a TIFF with a RAW extension to rawpy.
- not photos: `sniff`'s "video" and "text" are `FileContent.video` and `.text`; its None is `.unrecognised` (for the
  decoder: no known signature, so Pillow and then rawpy are tried).
A case the two sides answer differently carries `ml_service`, what `sniff` says, and a note saying why.
"""
from __future__ import annotations

import base64
import json

import pytest

from conftest import REPO
from photo_sorter_ml.decode import HEAD_BYTES, PILLOW_CONTENT, RAW_EXTENSIONS, sniff

FIXTURE = REPO / "Tests/Fixtures/file-kinds.json"
CASES = json.loads(FIXTURE.read_text())
# Everything `sniff` can answer besides the Pillow formats.
OTHER_ANSWERS = {"cr2", "video", "text", None}


def in_fixture_terms(head: bytes, extension: str) -> str:
    """What `sniff` says of `head`, in the fixture's words."""
    kind = sniff(head)
    if kind == "tiff" and extension == "nef":
        assert f".{extension}" in RAW_EXTENSIONS  # decode takes it to rawpy, as the service's nef
        return "nef"
    return "unrecognised" if kind is None else kind


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_sniff_answers_as_the_service_does(case):
    head = base64.b64decode(case["head_base64"], validate=True)
    assert len(head) <= HEAD_BYTES  # both sides look at the first 1024 bytes (FileContent.headerLength)
    assert (case["format"] is None) == (case["content"] != "image"), case["name"]
    service = case["format"] or case["content"]
    expected = case.get("ml_service", service)
    assert in_fixture_terms(head, case["extension"]) == expected


def test_the_fixture_covers_every_answer_of_sniff_and_every_format_of_the_service():
    answers = {sniff(base64.b64decode(c["head_base64"])) for c in CASES}
    assert answers == PILLOW_CONTENT | OTHER_ANSWERS
    service_formats = {"jpeg", "png", "heif", "nef", "cr2", "webp", "gif", "bmp", "tiff"}  # PhotoFormat's cases
    assert {c["format"] for c in CASES} == service_formats | {None}
    assert {c["content"] for c in CASES} == {"image", "video", "text", "unrecognised"}
