"""Face names from XMP face regions (xmp_regions.py), read during `pipeline.analyse` with the real ArcFace models.

Every fixture is made at test time in a temporary folder from real photos of ../shared/testdata/faces, with exiftool
(and one with exiv2) in the style of the tool that writes it: digiKam, Lightroom, Windows Photo Gallery, Picasa.
Regions are drawn by hand, looser than the detector's boxes, as people draw them.
"""
from __future__ import annotations

import io
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import analyse as analyse_by_api
from conftest import submit
from photo_sorter_ml.config import Settings
from photo_sorter_ml.models import load_models
from photo_sorter_ml.pipeline import PipelineParams, analyse
from photo_sorter_ml.xmp_regions import iou
from test_callback_contract import check_against_swift, components  # noqa: F401 (a fixture)

GROUP = "face_recognition_examples/_group/obama_and_biden.jpg"  # 2000 x 1428, three faces
OBAMA = "face_recognition_examples/obama/obama.jpg"  # 910 x 1137, one face
# The faces of GROUP as SCRFD finds them, left to right, and regions drawn around them by hand: about 1.3 times as
# wide and high, as (centre x, centre y, w, h) normalised, the MWG way.
FACES = {"left": [758, 389, 938, 648], "middle": [1140, 358, 1327, 606], "right": [1637, 1042, 1781, 1229]}
DRAWN = {"left": (0.424, 0.363, 0.12, 0.231), "middle": (0.617, 0.3375, 0.125, 0.224),
         "right": (0.855, 0.795, 0.09, 0.17)}
BLANK = (0.08, 0.12, 0.06, 0.1)  # blurred background in the top left corner: no face there

needs_tools = pytest.mark.skipif(not (shutil.which("exiftool") and shutil.which("exiv2")),
                                 reason="exiftool (libimage-exiftool-perl) and exiv2 are needed to make the fixtures")
pytestmark = needs_tools


@pytest.fixture(scope="module")
def models():
    return load_models("arcface")


@pytest.fixture(scope="module")
def params():
    return PipelineParams.from_settings(Settings(model="arcface"))


def exiftool(*args) -> None:
    subprocess.run(["exiftool", "-q", "-overwrite_original", *map(str, args)], check=True, capture_output=True)


def mwg(*regions, dims=(2000, 1428)) -> str:
    """exiftool's -RegionInfo value: regions are (name or None, (x, y, w, h), type or None)."""
    items = []
    for name, (x, y, w, h), kind in regions:
        fields = [f"Area={{X={x},Y={y},W={w},H={h},Unit=normalized}}"]
        fields += [f"Name={name}"] if name else []
        fields += [f"Type={kind}"] if kind else []
        items.append("{" + ",".join(fields) + "}")
    return (f"-RegionInfo={{AppliedToDimensions={{W={dims[0]},H={dims[1]},Unit=pixel}},"
            f"RegionList=[{','.join(items)}]}}")


def mp(*regions) -> str:
    """exiftool's -RegionInfoMP value: regions are (name, (x, y, w, h)) with x, y the TOP-LEFT corner."""
    items = [f"{{PersonDisplayName={name},Rectangle={x}|, {y}|, {w}|, {h}}}" for name, (x, y, w, h) in regions]
    return f"-RegionInfoMP={{Regions=[{','.join(items)}]}}"


def top_left(region):
    x, y, w, h = region
    return (round(x - w / 2, 4), round(y - h / 2, 4), w, h)


def photo(faces: Path, tmp_path: Path, name: str = "photo.jpg", of: str = GROUP) -> Path:
    path = tmp_path / name
    shutil.copyfile(faces / of, path)
    return path


def names(result: dict) -> dict[str, str]:
    """Which face of GROUP each name landed on."""
    out = {}
    for d in result["detections"]:
        if "xmp_name" in d:
            where = max(FACES, key=lambda k: iou(d["bbox"], FACES[k]))
            out[d["xmp_name"]] = where if iou(d["bbox"], FACES[where]) > 0.5 else d["bbox"]
    return out


def test_digikam_sidecar_with_mwg_mp_and_tags_names_the_faces_from_mwg(faces, tmp_path, models, params):
    path = photo(faces, tmp_path)
    exiftool(mwg(("Ann Smith", DRAWN["left"], "Face"), ("Bob Jones", DRAWN["middle"], "Face")),
             # digiKam writes the same faces as Microsoft regions too; one more here, to show they are not read
             mp(("Ann Smith", top_left(DRAWN["left"])), ("Bob Jones", top_left(DRAWN["middle"])),
                ("Carl Only-MP", top_left(DRAWN["right"]))),
             "-XMP-digiKam:TagsList=People/Ann Smith", "-XMP-digiKam:TagsList=People/Bob Jones",
             "-o", f"{path}.xmp", path)
    result = analyse(str(path), models=models, params=params)
    assert names(result) == {"Ann Smith": "left", "Bob Jones": "middle"}
    assert result["xmp"] == {"source": "sidecar", "path": f"{path}.xmp", "named_regions": 2, "matched": 2,
                             "drawn": 0, "ignored": 0}
    assert not any("source" in d for d in result["detections"])


def test_lightroom_sidecar_named_after_the_photo_without_its_extension_is_read_whatever_its_case(faces, tmp_path,
                                                                                                 models, params):
    path = photo(faces, tmp_path, "IMG_1.jpg")
    sidecar = tmp_path / "IMG_1.XMP"
    exiftool(mwg(("Ann Smith", DRAWN["middle"], "Face")), "-XMP-lr:HierarchicalSubject=People|Ann Smith",
             "-o", tmp_path / "IMG_1.xmp", path)
    (tmp_path / "IMG_1.xmp").rename(sidecar)
    result = analyse(str(path), models=models, params=params)
    assert names(result) == {"Ann Smith": "middle"}
    assert result["xmp"]["source"] == "sidecar" and result["xmp"]["path"] == str(sidecar)


def test_the_full_name_sidecar_wins_over_the_lightroom_one(faces, tmp_path, models, params):
    path = photo(faces, tmp_path)
    exiftool(mwg(("Lightroom Name", DRAWN["left"], "Face")), "-o", tmp_path / "photo.xmp", path)
    exiftool(mwg(("digiKam Name", DRAWN["left"], "Face")), "-o", f"{path}.xmp", path)
    assert names(analyse(str(path), models=models, params=params)) == {"digiKam Name": "left"}


def test_windows_photo_gallery_regions_embedded_in_the_jpeg_are_read_top_left_based(faces, tmp_path, models, params):
    path = photo(faces, tmp_path)
    exiftool(mp(("Ann Smith", top_left(DRAWN["right"])), ("Bob Jones", top_left(DRAWN["left"]))), path)
    result = analyse(str(path), models=models, params=params)
    assert names(result) == {"Ann Smith": "right", "Bob Jones": "left"}
    assert result["xmp"] == {"source": "embedded", "path": None, "named_regions": 2, "matched": 2, "drawn": 0,
                             "ignored": 0}


def test_picasa_regions_embedded_in_the_jpeg_are_read(faces, tmp_path, models, params):
    path = photo(faces, tmp_path)
    exiftool(mwg(("Ann Smith", DRAWN["left"], "Face"), ("Bob Jones", DRAWN["middle"], "Face"),
                 ("Cy Young", DRAWN["right"], "Face")), path)
    result = analyse(str(path), models=models, params=params)
    assert names(result) == {"Ann Smith": "left", "Bob Jones": "middle", "Cy Young": "right"}
    assert result["xmp"]["source"] == "embedded"


def test_regions_in_pixels_written_by_exiv2_are_converted_with_applied_to_dimensions(faces, tmp_path, models, params):
    path = photo(faces, tmp_path)
    region = "Xmp.mwg-rs.Regions/mwg-rs:RegionList[1]"
    subprocess.run(["exiv2", *(f"-Mset {key} {value}" for key, value in [
        ("Xmp.mwg-rs.Regions/mwg-rs:AppliedToDimensions/stDim:w", 2000),
        ("Xmp.mwg-rs.Regions/mwg-rs:AppliedToDimensions/stDim:h", 1428),
        ("Xmp.mwg-rs.Regions/mwg-rs:AppliedToDimensions/stDim:unit", "pixel"),
        ("Xmp.mwg-rs.Regions/mwg-rs:RegionList", "XmpText type=Bag"),
        (f"{region}/mwg-rs:Name", "Bob Jones"), (f"{region}/mwg-rs:Type", "Face"),
        (f"{region}/mwg-rs:Area/stArea:x", 1234), (f"{region}/mwg-rs:Area/stArea:y", 482),
        (f"{region}/mwg-rs:Area/stArea:w", 240), (f"{region}/mwg-rs:Area/stArea:h", 320),
        (f"{region}/mwg-rs:Area/stArea:unit", "pixel")]), str(path)], check=True, capture_output=True)
    assert names(analyse(str(path), models=models, params=params)) == {"Bob Jones": "middle"}


def test_unnamed_and_non_face_regions_are_ignored_and_a_region_without_type_is_a_face(faces, tmp_path, models, params):
    path = photo(faces, tmp_path)
    exiftool(mwg(("Rex", DRAWN["left"], "Pet"), ("Sharp Here", BLANK, "Focus"), ("Code", BLANK, "BarCode"),
                 (None, DRAWN["middle"], "Face"), ("Cy Young", DRAWN["right"], None)), "-o", f"{path}.xmp", path)
    result = analyse(str(path), models=models, params=params)
    assert names(result) == {"Cy Young": "right"}
    assert result["xmp"] == {"source": "sidecar", "path": f"{path}.xmp", "named_regions": 1, "matched": 1,
                             "drawn": 0, "ignored": 4}


def test_a_sidecar_without_regions_falls_back_to_the_embedded_regions(faces, tmp_path, models, params):
    path = photo(faces, tmp_path)
    exiftool("-XMP-dc:Subject=holiday", "-o", f"{path}.xmp", path)
    exiftool(mwg(("Ann Smith", DRAWN["left"], "Face")), path)
    result = analyse(str(path), models=models, params=params)
    assert names(result) == {"Ann Smith": "left"} and result["xmp"]["source"] == "embedded"


def sideways(faces: Path, tmp_path: Path, orientation: int | None) -> Path:
    """OBAMA stored a quarter turn counter-clockwise, the way a camera held upright stores it, with that EXIF
    orientation (6: display turned a quarter clockwise) or none (a print scanned sideways)."""
    path = tmp_path / "sideways.jpg"
    Image.open(faces / OBAMA).transpose(Image.Transpose.ROTATE_90).save(path, quality=92)
    if orientation:
        exiftool(f"-Orientation#={orientation}", path)
    return path


def test_regions_of_a_photo_with_exif_orientation_6_are_in_displayed_coordinates(faces, tmp_path, models, params):
    path = sideways(faces, tmp_path, 6)
    # Around obama.jpg's face [378, 83, 610, 427] of 910 x 1137, as displayed (upright).
    exiftool(mwg(("Barack Obama", (0.54, 0.22, 0.34, 0.4), "Face"), dims=(910, 1137)), "-o", f"{path}.xmp", path)
    result = analyse(str(path), models=models, params=params)
    assert (result["width"], result["height"], result["quarter_turns"]) == (910, 1137, 0)
    [face] = result["detections"]
    assert face["xmp_name"] == "Barack Obama" and iou(face["bbox"], [378, 83, 610, 427]) > 0.8


def test_regions_of_a_sideways_scan_are_turned_upright_with_the_photo(faces, tmp_path, models, params):
    path = sideways(faces, tmp_path, None)
    # The same face as stored (lying on its side, 1137 x 910): the photo is turned upright by the face finder.
    exiftool(mwg(("Barack Obama", (0.22, 0.46, 0.4, 0.34), "Face"), dims=(1137, 910)), "-o", f"{path}.xmp", path)
    result = analyse(str(path), models=models, params=params)
    assert result["quarter_turns"] == 3 and (result["width"], result["height"]) == (910, 1137)
    [face] = result["detections"]
    assert face["xmp_name"] == "Barack Obama" and iou(face["bbox"], [378, 83, 610, 427]) > 0.8


def test_a_loose_region_still_names_the_detected_face_instead_of_adding_one(faces, tmp_path, models, params):
    path = photo(faces, tmp_path)
    x, y, w, h = DRAWN["middle"]
    exiftool(mwg(("Bob Jones", (x, y + 0.02, w * 1.6, h * 1.5), "Face")), "-o", f"{path}.xmp", path)  # IoU ~0.26
    result = analyse(str(path), models=models, params=params)
    assert names(result) == {"Bob Jones": "middle"} and len(result["detections"]) == 3
    assert result["xmp"]["matched"] == 1 and result["xmp"]["drawn"] == 0


def _unit(embedding: bytes) -> np.ndarray:
    v = np.frombuffer(embedding, dtype="<f4")
    assert v.shape == (512,) and abs(float(np.linalg.norm(v)) - 1.0) < 1e-3
    return v


def test_named_regions_without_a_detected_face_become_faces_embedded_from_their_box(faces, tmp_path, models, params):
    """A small picture of a face framed on the wall (obama.jpg, 60 px wide: 5 px in the detection copy) is missed by
    the detector; its region finds it at full resolution. A region on the bare wall is embedded from its box."""
    path = tmp_path / "photo.jpg"
    group = Image.open(faces / GROUP).convert("RGB")
    group.paste(Image.open(faces / OBAMA).convert("RGB").resize((60, 75)), (100, 1200))
    group.save(path, quality=92)
    on_wall = (132.0 / 2000, 1217.0 / 1428, 30.0 / 2000, 36.0 / 1428)  # around the 16 x 23 px face at (124, 1205)
    exiftool(mwg(("Barack Obama", on_wall, "Face"), ("Nobody Seen", BLANK, "Face"),
                 ("Ann Smith", DRAWN["left"], "Face")), "-o", f"{path}.xmp", path)
    result = analyse(str(path), models=models, params=params)
    drawn = {d["xmp_name"]: d for d in result["detections"] if d.get("source") == "xmp_region"}
    assert set(drawn) == {"Barack Obama", "Nobody Seen"} and names(result)["Ann Smith"] == "left"
    assert result["xmp"] == {"source": "sidecar", "path": f"{path}.xmp", "named_regions": 3, "matched": 1,
                             "drawn": 2, "ignored": 0}
    obama, nobody = drawn["Barack Obama"], drawn["Nobody Seen"]
    assert obama["confidence"] > 0.65 and nobody["confidence"] == 0.0
    assert obama["bbox"] == [117, 1199, 147, 1235]  # the region's box, not the detector's
    assert nobody["bbox"] == [100, 100, 220, 243]
    for d in (obama, nobody):
        _unit(d["embedding"])
        assert Image.open(io.BytesIO(d["thumbnail"])).size == (112, 112)


def test_dlib_embeds_a_region_from_its_box(faces):
    pytest.importorskip("dlib")
    rgb = np.asarray(Image.open(faces / OBAMA).convert("RGB"))
    from photo_sorter_ml.models import Detection, unit_rows

    vectors = unit_rows(load_models("dlib").embedder.embed(rgb, [Detection(350, 60, 640, 450, 0.0)]))[0]
    assert vectors.shape == (1, 128) and abs(float(np.linalg.norm(vectors[0])) - 1.0) < 1e-3


@pytest.mark.parametrize("content", [
    b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:mwg-rs='http://www.metadataworkinggroup.com/schemas/regions/'",
    b"\x00\x01 http://www.metadataworkinggroup.com/schemas/regions/ \xff\xfe not XML",
    (b"<x:xmpmeta xmlns:x='adobe:ns:meta/' xmlns:mwg-rs='http://www.metadataworkinggroup.com/schemas/regions/'>"
     + b"<mwg-rs:a>" * 50_000 + b"</mwg-rs:a>" * 50_000 + b"</x:xmpmeta>"),  # crashes exempi when given to it
], ids=["truncated", "binary", "nested-50000-deep"])
def test_a_garbled_sidecar_gives_no_names_and_the_photo_is_still_analysed(faces, tmp_path, models, params, caplog,
                                                                          content):
    path = photo(faces, tmp_path)
    Path(f"{path}.xmp").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="photo_sorter_ml.xmp_regions"):
        result = analyse(str(path), models=models, params=params)
    assert result["ok"] and len(result["detections"]) == 3 and "xmp" not in result
    assert not any("xmp_name" in d for d in result["detections"])
    assert f"XMP of {path}.xmp ignored" in caplog.text


def test_uploaded_bytes_are_not_read_for_regions(faces, tmp_path, models, params):
    path = photo(faces, tmp_path)
    exiftool(mwg(("Ann Smith", DRAWN["left"], "Face")), path)
    result = analyse(path.read_bytes(), "photo.jpg", models=models, params=params)
    assert "xmp" not in result and not any("xmp_name" in d for d in result["detections"])


def test_regions_embedded_in_a_heic_are_read(faces, tmp_path, models, params):
    sidecar = tmp_path / "regions.xmp"
    exiftool(mwg(("Ann Smith", DRAWN["left"], "Face")), "-o", sidecar, faces / GROUP)
    path = tmp_path / "photo.heic"
    Image.open(faces / GROUP).save(path, "HEIF", quality=80, xmp=sidecar.read_bytes())
    result = analyse(str(path), models=models, params=params)
    assert names(result) == {"Ann Smith": "left"} and result["xmp"]["source"] == "embedded"


def test_the_api_and_the_callback_carry_the_names_as_the_swift_service_declares(server, receiver, faces, work_dir,
                                                                               next_id, components):  # noqa: F811
    path = work_dir / "xmp-named.jpg"
    shutil.copyfile(faces / GROUP, path)
    exiftool(mwg(("Ann Smith", DRAWN["left"], "Face"), ("Nobody Seen", BLANK, "Face")), "-o", f"{path}.xmp", path)
    body = submit(server, receiver, path, next_id())
    check_against_swift(body, components)
    by_api = analyse_by_api(server, path)
    for answer in (body, by_api):
        assert answer["xmp"] == {"source": "sidecar", "path": f"{path}.xmp", "named_regions": 2, "matched": 1,
                                 "drawn": 1, "ignored": 0}
        assert [(d.get("xmp_name"), d.get("source")) for d in answer["detections"]] == [
            ("Ann Smith", None), (None, None), (None, None), ("Nobody Seen", "xmp_region")]
    plain = analyse_by_api(server, faces / GROUP)
    assert "xmp" not in plain and not any({"xmp_name", "source"} & set(d) for d in plain["detections"])
