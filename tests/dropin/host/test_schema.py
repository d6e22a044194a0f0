"""The published API schema of a host whose users have UUID keys."""

import jsonschema
from rest_framework.test import APIClient

from tests.serving.test_api import PublishedSchema


def test_audience_user_ids_are_documented_as_the_user_models_key(db):
    """A host whose users have UUID keys is told that the audience's user ids are UUIDs, as
    its answers hold them, not integers."""
    schema = PublishedSchema(APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json())
    member = {"allOf": [{"$ref": "#/components/schemas/AudienceMember"}], "components": schema.components}
    row = {
        "user_id": "0b9d7e64-5c1f-4a3e-9a51-2f0c8e0a7d11",
        "username": "ada",
        "email": "a@b.c",
        "score": 1.0,
    }
    assert list(jsonschema.Draft4Validator(member).iter_errors(row)) == []
    assert list(jsonschema.Draft4Validator(member).iter_errors({**row, "user_id": 7}))
    assert schema.document["components"]["schemas"]["AudienceMember"]["properties"]["user_id"] == {
        "type": "string",
        "format": "uuid",
    }
