"""metadata/gitlab.json is what the backend registers: it must validate and match the connector."""

import json

import pytest

from painchain_pipelines.backend.schemas.connector_types import ConnectorTypeRegister
from painchain_pipelines.connectors.base import ConfigError
from painchain_pipelines.connectors.gitlab import GitLabConnector
from painchain_pipelines.connectors.gitlab.config import parse_config
from painchain_pipelines.connectors.registration import load_metadata
from painchain_pipelines.paths import METADATA_DIR

METADATA = json.loads((METADATA_DIR / "gitlab.json").read_text())


def test_metadata_validates_as_a_connector_type():
    registered = ConnectorTypeRegister.model_validate(METADATA)
    assert registered.id == GitLabConnector.id == "gitlab"
    assert load_metadata("gitlab")["id"] == "gitlab"


def test_metadata_has_the_same_shape_as_github():
    github = json.loads((METADATA_DIR / "github.json").read_text())
    assert set(METADATA) == set(github)
    keys = [f["key"] for f in METADATA["configSchema"]["fields"]]
    assert keys[:2] == ["name", "tags"]
    assert {"token", "url", "projects", "branches", "allBranches", "caCertificate"} <= set(keys)
    fields = {f["key"]: f for f in METADATA["configSchema"]["fields"]}
    assert fields["token"]["type"] == "password" and fields["token"]["required"]
    assert fields["url"]["default"] == "https://gitlab.com" and fields["url"]["type"] == "text"
    assert fields["projects"]["type"] == "textarea" and fields["projects"]["format"] == "json"
    assert fields["allBranches"]["type"] == "checkbox"
    assert fields["caCertificate"]["type"] == "textarea" and not fields["caCertificate"]["required"]


def test_fields_that_decide_where_the_token_goes_guard_it():
    fields = {f["key"]: f for f in METADATA["configSchema"]["fields"]}
    assert fields["url"]["guardsSecrets"] == ["token"]
    assert fields["caCertificate"]["guardsSecrets"] == ["token"]
    guarded = {k for k, f in fields.items() if f.get("guardsSecrets")}
    assert guarded == {"url", "caCertificate"}


def test_every_metadata_field_but_name_and_tags_is_read_by_the_connector():
    config = {"token": "glpat-x", "projects": '["a/b"]', "url": "https://gitlab.example.com/gitlab",
              "branches": '["release"]', "allBranches": True, "caCertificate": ""}
    parsed = parse_config(config)
    assert parsed.url == "https://gitlab.example.com/gitlab" and parsed.all_branches
    assert parsed.branches == ("release",) and parsed.projects == ("a/b",)


@pytest.mark.parametrize("value", [["a/b"], ["group/sub/project"], [42], ["42"]])
def test_projects_json_schema_accepts_what_the_connector_accepts(value):
    import jsonschema

    schema = next(f for f in METADATA["configSchema"]["fields"] if f["key"] == "projects")["jsonSchema"]
    jsonschema.validate(value, schema)
    parse_config({"token": "t", "projects": value})


@pytest.mark.parametrize("value", [[], ["noslash"], [0], ["a b/c"]])
def test_projects_json_schema_rejects_what_the_connector_rejects(value):
    import jsonschema

    schema = next(f for f in METADATA["configSchema"]["fields"] if f["key"] == "projects")["jsonSchema"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(value, schema)
    with pytest.raises(ConfigError) as info:
        parse_config({"token": "t", "projects": value})
    assert info.value.field == "projects"
