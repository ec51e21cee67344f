"""What runs the ArcFace model's two ONNX files on the CPU (PHOTO_SORTER_ML_RUNTIME).

Two engines, both reading the ONNX files directly (no conversion step):
- OpenVINO, compiled for fp32: on CPUs with AVX512-BF16 or AMX it would otherwise infer in bfloat16, whose
  embeddings drift to cosine ~0.999 from fp32's and whose detector loses faces. What it compiles is kept in
  `compile_cache` (PHOTO_SORTER_ML_COMPILE_CACHE), keyed by the model file's content and the compile settings, so a
  worker that starts again loads it in ~40 ms instead of compiling for ~160 ms (bench/RESULTS.md, "Issue 23, third
  pass"); the same compiled model, so the same numbers;
- onnxruntime's CPU execution provider.

On the same files they give the same faces and embeddings (cosine >= 0.99999), at different speeds: OpenVINO
embeds faces ~1.9x faster, onnxruntime detects ~1.25x faster (bench/RESULTS.md, "Faster CPU runtime"). The
default, `mixed`, runs each model on its faster engine; `openvino` and `onnxruntime` run both on one.

Either way the detector and the embedder (arcface_models.py) get a session with the part of onnxruntime's
InferenceSession they call (`get_inputs`, `get_outputs`, `run`). One inference thread per session: the service runs
one worker process per core.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

ENGINES = ("openvino", "onnxruntime")
# PHOTO_SORTER_ML_RUNTIME -> (the detector's engine, the embedder's engine)
RUNTIMES = {
    "mixed": ("onnxruntime", "openvino"),
    "openvino": ("openvino", "openvino"),
    "onnxruntime": ("onnxruntime", "onnxruntime"),
}
DEFAULT_RUNTIME = "mixed"
THREADS = 1

log = logging.getLogger("photo_sorter_ml.runtimes")


def engines(runtime: str) -> tuple[str, str]:
    """(detector's engine, embedder's engine) of a PHOTO_SORTER_ML_RUNTIME value; ValueError naming the allowed
    values for anything else."""
    try:
        return RUNTIMES[runtime]
    except KeyError:
        raise ValueError(f"PHOTO_SORTER_ML_RUNTIME must be one of {', '.join(RUNTIMES)}, got {runtime!r}") from None


def engine_version(engine: str) -> str | None:
    """The installed version of the engine's package."""
    try:
        return importlib.metadata.version(engine)
    except importlib.metadata.PackageNotFoundError:
        return None


def inference_session(model_file: str, engine: str, threads: int = THREADS, compile_cache: str | None = None) -> Any:
    """A session on `model_file` with `threads` inference threads, on `engine` (openvino | onnxruntime);
    `compile_cache`: the folder OpenVINO keeps its compiled models in (None: compile every time)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown inference engine {engine!r}: one of {', '.join(ENGINES)}")
    if engine == "openvino":
        return OpenVinoSession(model_file, threads, compile_cache)
    return onnxruntime_session(model_file, threads)


def onnxruntime_session(model_file: str, threads: int = THREADS):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # w600k_mbf declares a batch of 1 on its output; batches of several faces are fine but make onnxruntime
    # warn on every run.
    options.log_severity_level = 3
    return ort.InferenceSession(model_file, sess_options=options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Port:
    """An input or output as onnxruntime describes it: its name and shape, "?" for a dimension left open."""
    name: str
    shape: list


class OpenVinoSession:
    """An ONNX file compiled by OpenVINO for the CPU, with onnxruntime's session interface."""

    def __init__(self, model_file: str, threads: int = THREADS, compile_cache: str | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        if compile_cache and _usable_folder(compile_cache):
            # Given the file's path (not a read model), OpenVINO keys the cache by the file and looks there first.
            core.set_property({"CACHE_DIR": compile_cache})
            model = model_file
        else:
            model = core.read_model(model_file)
        compiled = core.compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": threads,
            # Each worker process would pin its thread without knowing of the others, possibly all to one core.
            "ENABLE_CPU_PINNING": False,
        })
        self._request = compiled.create_infer_request()
        self._inputs = [_port(p) for p in compiled.inputs]
        self._outputs = [_port(p) for p in compiled.outputs]

    def get_inputs(self) -> list[Port]:
        return self._inputs

    def get_outputs(self) -> list[Port]:
        return self._outputs

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self._request.infer(feed)  # copies of the outputs: the next call reuses the request's buffers
        return [results[name] for name in (output_names or [p.name for p in self._outputs])]


def _usable_folder(path: str) -> bool:
    """Whether `path` is (or could be made) a folder this process can write to; a cache it cannot write is skipped."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        log.warning("not caching compiled models in %s: %s", path, e)
        return False
    return os.access(path, os.W_OK)


def _port(port) -> Port:
    return Port(port.any_name, [d.get_length() if d.is_static else "?" for d in port.partial_shape])
