"""Finding every face of a photo: a first look, second looks only where it found nothing, and sideways photos
turned upright.

SCRFD-500M misses faces that fill the frame (close-ups, selfies, head crops, scanned portraits): on
`hard_faces` its first look at the 640 px detection copy found no face in 37 of 508 FG-NET and 272 of 3,500 CFP
photos, although a face is in every one. The same detector finds them when the face is smaller in its input, with
some border around it. The second looks below, tried in order only after the first look found nothing, were chosen
with `bench/ml/detection_looks.py` (bench/RESULTS.md, "Family photos"): of the 309 misses they find 301, and on 23
photos without people (every look, every quarter turn) they find no face. A photo whose first look found a face
pays nothing extra.

Orientation: a print scanned sideways has no EXIF orientation to correct it. SCRFD still finds most sideways faces,
and their landmarks point the way up (eyes above the mouth): when the faces found say the photo lies on its side,
the photo is turned upright and looked at again. Where no look finds anything, the 320 px second looks are tried again on
the photo turned by a quarter, three quarters and a half. An upside-down face has landmarks placed as if it were upright
(29 of 29 measured), so where only a second look found the faces, the half-turned photo is asked as well and the
surer finding wins; the first look finds an upside-down face in few photos (3 of 60), and those stay as they are.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .models import Detection, FaceDetector


@dataclass(frozen=True)
class Look:
    """One way of looking at the detection copy: `pad` (a fraction of each side) of black border around it,
    then the whole resized so its longest side is `side` px (0: the padded copy's own size)."""
    name: str
    pad: float
    side: int
    shrink_to_original: bool = False  # the padded copy resized back to the copy's own longest side


FIRST_LOOK = Look("first", 0.0, 0)
# Of 309 first-look misses they find 270 and 280 alone, and the third 6 of those both miss; together 301.
SECOND_LOOKS = (
    Look("padded", 0.5, 0, shrink_to_original=True),
    Look("at-320", 0.0, 320),
    Look("padded-at-320", 0.25, 320),
)
# Quarter turns (counter-clockwise, as np.rot90 counts them) tried when no upright look finds a face, with the two
# 320 px looks only: on 100 FG-NET prints turned by 1, 2 and 3 quarters they turn as many upright (91, 75, 100) as
# all three second looks, for a third of the cost; without turned looks 70, 23 and 69 are.
TURNS = (1, 3, 2)
TURN_LOOKS = tuple(look for look in SECOND_LOOKS if look.side == 320)
# How much surer the half-turned photo's faces must be to turn a photo whose faces a second look found.
HALF_TURN_MARGIN = 0.08


@dataclass
class FoundFaces:
    """Faces in the coordinates of the detection copy after `quarter_turns` counter-clockwise turns of it."""
    faces: list[Detection]
    look: str  # the look that found them ("first" for most photos; "none" when nothing was found)
    quarter_turns: int  # 0: upright as decoded


def _look_at(image: np.ndarray, look: Look) -> tuple[np.ndarray, float, int, int]:
    """(look image, scale, pad_x, pad_y): a point (x, y) of `image` is at ((x + pad_x) * scale, (y + pad_y) * scale)."""
    h, w = image.shape[:2]
    px, py = int(round(w * look.pad)), int(round(h * look.pad))
    if px or py:
        padded = np.zeros((h + 2 * py, w + 2 * px, 3), np.uint8)
        padded[py:py + h, px:px + w] = image
    else:
        padded = image
    ph, pw = padded.shape[:2]
    side = max(h, w) if look.shrink_to_original else look.side
    if side <= 0 or side == max(ph, pw):
        return padded, 1.0, px, py
    scale = side / float(max(ph, pw))
    size = (max(1, round(pw * scale)), max(1, round(ph * scale)))
    resized = np.asarray(Image.fromarray(padded).resize(size, Image.BILINEAR))
    return resized, size[0] / float(pw), px, py


def _detect(detector: FaceDetector, image: np.ndarray, look: Look, upsample: int) -> list[Detection]:
    """The look's faces, mapped back to `image` coordinates."""
    if look is FIRST_LOOK:
        return detector.detect(image, upsample)
    seen, scale, px, py = _look_at(image, look)
    return [d.scaled(1.0 / scale).shifted(-px, -py) for d in detector.detect(np.ascontiguousarray(seen), 0)]


def _first_finding(detector: FaceDetector, image: np.ndarray, upsample: int, looks) -> tuple[list[Detection], str]:
    for look in looks:
        faces = _detect(detector, image, look, upsample)
        if faces:
            return faces, look.name
    return [], "none"


def quarter_turns_of(faces: list[Detection]) -> int:
    """How many counter-clockwise quarter turns bring these faces upright, by the confidence-weighted vote of
    their landmarks (eyes-to-mouth direction); 0 for faces without landmarks."""
    votes = [0.0] * 4
    for face in faces:
        if face.landmarks is None:
            continue
        eyes = (face.landmarks[0] + face.landmarks[1]) / 2
        mouth = (face.landmarks[3] + face.landmarks[4]) / 2
        down = mouth - eyes
        # Image y points down, so an upright face's "down" is (0, +1). A photo turned by k counter-clockwise
        # quarter turns has it pointing right (k=1), up (k=2) or left (k=3); turning back takes (4 - k) % 4.
        k = int(round(math.degrees(math.atan2(down[0], down[1])) / 90.0)) % 4
        votes[(4 - k) % 4] += face.confidence
    return int(np.argmax(votes)) if votes[0] < max(votes) else 0


def turned(image: np.ndarray, quarter_turns: int) -> np.ndarray:
    """`image` turned counter-clockwise by `quarter_turns` (a contiguous copy; the image itself when 0)."""
    return image if quarter_turns % 4 == 0 else np.ascontiguousarray(np.rot90(image, quarter_turns))


def _best(faces: list[Detection]) -> float:
    return max(face.confidence for face in faces)


def find_faces(detector: FaceDetector, image: np.ndarray, upsample: int, second_looks: bool = True) -> FoundFaces:
    """Every face of the detection copy `image`: the first look, else the second looks; faces whose landmarks say
    the photo lies on its side have the photo turned upright and looked at again; where nothing is found, the
    second looks are tried on the copy turned by quarter turns. `second_looks=False`: the first look alone."""
    if not second_looks:
        return FoundFaces(detector.detect(image, upsample), FIRST_LOOK.name, 0)
    faces, look = _first_finding(detector, image, upsample, (FIRST_LOOK,) + SECOND_LOOKS)
    if faces:
        turns = quarter_turns_of(faces)
        if turns:
            upright, upright_look = _first_finding(detector, turned(image, turns), upsample, (FIRST_LOOK,) + SECOND_LOOKS)
            if upright:
                return FoundFaces(upright, upright_look, turns)
        elif look != FIRST_LOOK.name:
            # Upside-down faces have upright-looking landmarks, and the first look rarely finds them (3 of 60):
            # where a second look found the faces, the half-turned photo is asked too, and wins when it is clearly
            # surer. On the 309 upright close-ups the first look misses, any margin under 0.05 turned one or two
            # upside down; at 0.08 none is, and 282 of the same photos given upside down are turned back.
            flipped, flipped_look = _first_finding(detector, turned(image, 2), upsample, (FIRST_LOOK,) + SECOND_LOOKS)
            if flipped and quarter_turns_of(flipped) == 0 and _best(flipped) > _best(faces) + HALF_TURN_MARGIN:
                return FoundFaces(flipped, flipped_look, 2)
        return FoundFaces(faces, look, 0)
    for turns in TURNS:
        # Not the plain first look: on a turned copy it finds a dog's face (dlib_faces/_noface).
        faces, look = _first_finding(detector, turned(image, turns), upsample, TURN_LOOKS)
        if faces and quarter_turns_of(faces) == 0:
            return FoundFaces(faces, look, turns)
    return FoundFaces([], "none", 0)


# Border around a drawn region, as a fraction of its sides, and the side the padded crop is looked at: the region
# then fills half the look, as frame-filling faces do in the "padded-at-320" second look.
REGION_PAD = 0.5
REGION_LOOK_SIDE = 320


def face_in_region(detector: FaceDetector, rgb: np.ndarray, box: list[int]) -> Detection | None:
    """The face the detector finds in a padded crop around `box` ([x1, y1, x2, y2] of `rgb`), in `rgb` coordinates:
    of those whose centre lies inside the box, the surest; None when there is none."""
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = box
    px, py = (x2 - x1) * REGION_PAD, (y2 - y1) * REGION_PAD
    cx1, cy1 = max(0, int(x1 - px)), max(0, int(y1 - py))
    cx2, cy2 = min(width, int(x2 + px) + 1), min(height, int(y2 + py) + 1)
    crop = rgb[cy1:cy2, cx1:cx2]
    scale = REGION_LOOK_SIDE / float(max(crop.shape[:2]))
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    look = np.asarray(Image.fromarray(crop).resize(size, Image.BILINEAR))
    faces = [d.scaled(1.0 / scale).shifted(cx1, cy1) for d in detector.detect(look, 0)]
    inside = [d for d in faces if x1 <= (d.left + d.right) / 2 <= x2 and y1 <= (d.top + d.bottom) / 2 <= y2]
    return max(inside, key=lambda d: d.confidence, default=None)
