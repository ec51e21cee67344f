"""The callback contract: what the ML service POSTs to the Swift service is what the Swift service's OpenAPI document
declares as `CallbackPayload` (Sources/PhotoSorterServer/OpenAPI/openapi.json), and the two declare the same fields.

Real callbacks of the running service (a photo with a suggested face, a photo without faces, a file that is no
photo) are validated against the Swift document's schema, with its `$ref`s resolved; then every property of that
schema, nested ones included, must be a field of `schemas.CallbackPayload`, and every field of it a property there.
"""
from __future__ import annotations

import json
import time
from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel

from conftest import MATCH_THRESHOLDS, REPO, analyse, submit
from photo_sorter_ml.schemas import CallbackPayload, Detection, Meta, NewPerson, Taken, XmpRegions

SWIFT_DOCUMENT = REPO / "Sources/PhotoSorterServer/OpenAPI/openapi.json"
OBAMA_720P = "face_recognition_examples/obama/obama-720p.jpg"


@pytest.fixture(scope="module")
def components() -> dict:
    return json.loads(SWIFT_DOCUMENT.read_text())["components"]


def resolved(schema: dict, components: dict) -> dict:
    """`schema` with a `#/components/schemas/...` reference followed."""
    while "$ref" in schema:
        schema = components["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def as_swift_reads(value: Any, schema: dict, components: dict) -> Any:
    """The payload as the Swift service decodes it: `decodeIfPresent` reads null for a property that is not required
    as the property being absent. The document does not mark those properties nullable (`error` and `callback_id` are
    null in a PROCESSED callback, `width` and `height` in a FAILED one), so nulls of optional properties are dropped
    before validating; a null where the schema requires a value still fails."""
    schema = resolved(schema, components)
    if isinstance(value, dict) and "properties" in schema:
        required = set(schema.get("required", ()))
        return {k: as_swift_reads(v, schema["properties"].get(k, {}), components) for k, v in value.items()
                if v is not None or k in required}
    if isinstance(value, list) and "items" in schema:
        return [as_swift_reads(v, schema["items"], components) for v in value]
    return value


def check_against_swift(payload: dict, components: dict) -> None:
    validator = jsonschema_rs.validator_for({"$schema": "https://json-schema.org/draft/2020-12/schema",
                                             "$ref": "#/components/schemas/CallbackPayload",
                                             "components": components})
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in validator.iter_errors(as_swift_reads(payload, {"$ref": "#/components/schemas/CallbackPayload"},
                                                            components))]
    assert errors == [], errors


def test_a_processed_callback_with_a_suggestion_is_what_the_swift_service_declares(server, receiver, faces, next_id,
                                                                                    components):
    known = analyse(server, faces / OBAMA_720P)["detections"][0]["embedding"]  # the best match of any person
    person = {"person_id": 90_001, "representative_embedding": known, "hidden": False, "coherence": 1.0,
              "meta": {"face_count": 1}}
    rule_before = receiver.identity_rule
    receiver.persons.append(person)
    receiver.identity_rule = {"match_threshold": MATCH_THRESHOLDS["arcface"], "small_person_margin": 0.0}
    try:
        time.sleep(0.5)  # older than PHOTO_SORTER_ML_DUMP_REFRESH_S: refreshed before the next job
        body = submit(server, receiver, faces / OBAMA_720P, next_id(), callback_id="p1-a1")
    finally:
        receiver.persons.remove(person)
        receiver.identity_rule = rule_before
    face = body["detections"][0]
    assert body["status"] == "PROCESSED" and face["suggested_person_id"] == 90_001 and "similarity" in face
    assert {"thumbnail", "preview", "taken", "quarter_turns"} <= set(face) | set(body)
    check_against_swift(body, components)


def test_a_photo_without_faces_and_a_failed_callback_are_what_the_swift_service_declares(server, receiver, faces,
                                                                                         work_dir, next_id,
                                                                                         components):
    no_faces = submit(server, receiver, faces / "dlib_faces/_noface/dogs.jpg", next_id())
    assert no_faces["status"] == "PROCESSED" and no_faces["detections"] == [] and no_faces["callback_id"] is None
    check_against_swift(no_faces, components)
    text = work_dir / "contract-notes.jpg"
    text.write_text("not a photo\n")
    failed = submit(server, receiver, text, next_id(), callback_id="p2-a1")
    assert failed["status"] == "FAILED" and failed["width"] is None and "content is text" in failed["error"]
    check_against_swift(failed, components)


def fields_of(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_the_swift_schema_and_the_pydantic_model_name_the_same_fields(components):
    """Both ways, at every level the callback nests: a property only the Swift side knows would never be sent, a
    field only the ML side knows would be dropped unread."""
    payload = resolved({"$ref": "#/components/schemas/CallbackPayload"}, components)
    properties = payload["properties"]
    taken = next(resolved(s, components) for s in properties["taken"]["oneOf"] if s.get("type") != "null")
    pairs = {
        "CallbackPayload": (payload, CallbackPayload),
        "detections[]": (resolved(properties["detections"]["items"], components), Detection),
        "new_persons[]": (resolved(properties["new_persons"]["items"], components), NewPerson),
        "meta": (resolved(properties["meta"], components), Meta),
        "taken": (taken, Taken),
        "xmp": (resolved(properties["xmp"], components), XmpRegions),
    }
    for where, (schema, model) in pairs.items():
        assert set(schema["properties"]) == fields_of(model), where
    assert set(payload["required"]) <= {name for name, f in CallbackPayload.model_fields.items() if f.is_required()}
    status = CallbackPayload.model_fields["status"].annotation.__args__
    assert set(properties["status"]["enum"]) == set(status)
