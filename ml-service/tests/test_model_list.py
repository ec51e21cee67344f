"""The models this service runs are the models the Swift service knows (`x-face-models` of its OpenAPI document, held
to `FaceModel.all` on the Swift side): the same names, embedders (the first part of `model_version`, which the service
keys its thresholds on) and embedding dimensions, so a result is never refused or mis-keyed for a model mismatch."""
from conftest import SERVICE_MODELS

from photo_sorter_ml.models import MODELS


def test_every_model_the_service_knows_runs_here_with_the_same_embedder_and_dimension():
    assert sorted(MODELS) == sorted(SERVICE_MODELS)
    for name, spec in MODELS.items():
        assert (spec.embedder, spec.embedding_dim) == (SERVICE_MODELS[name]["embedder"], SERVICE_MODELS[name]["dimension"]), name
