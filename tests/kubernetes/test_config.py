"""Configuration: errors name the field (clusters[1].server …); metadata/kubernetes.json agrees."""

from __future__ import annotations

import base64
import json
import subprocess

import jsonschema
import pytest

from painchain_pipelines.backend.schemas.connector_types import ConnectorTypeRegister
from painchain_pipelines.connectors.base import ConfigError, Integration
from painchain_pipelines.connectors.kubernetes import KubernetesConnector
from painchain_pipelines.connectors.kubernetes.client import build_api_client
from painchain_pipelines.connectors.kubernetes.config import KINDS, parse_config
from painchain_pipelines.connectors.registration import load_metadata
from painchain_pipelines.paths import METADATA_DIR

METADATA = json.loads((METADATA_DIR / "kubernetes.json").read_text())
FIELDS = {f["key"]: f for f in METADATA["configSchema"]["fields"]}
SECRET = "eyJhbGciOiJSUzI1NiJ9.secret-token-value-123456"
GOOD = {"name": "prod-eu", "server": "https://203.0.113.10:6443", "token": SECRET}


@pytest.fixture(scope="module")
def ca_base64(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "k.pem"), "-out",
                    str(d / "ca.crt"), "-days", "2", "-subj", "/CN=test-ca"], check=True, capture_output=True)
    return base64.b64encode((d / "ca.crt").read_bytes()).decode()


def test_a_good_configuration(ca_base64):
    config = parse_config({"clusters": json.dumps([
        {**GOOD, "certificate": ca_base64},
        {"name": "laptop", "context": "kind-dev"},
        {"name": "here", "inCluster": True},
    ]), "namespaces": '["shop", "payments"]', "kinds": '["deployments", "pods"]'})
    assert [c.mode for c in config.clusters] == ["server", "context", "inCluster"]
    assert config.clusters[0].ca_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert config.namespaces == ("shop", "payments") and config.kinds == ("deployments", "pods")
    assert parse_config({"clusters": [GOOD]}).kinds == KINDS and parse_config({"clusters": [GOOD]}).namespaces == ()


@pytest.mark.parametrize("clusters, field", [
    (None, "clusters"),
    ("[]", "clusters"),
    ("not json", "clusters"),
    ('{"name": "x"}', "clusters"),
    ([GOOD, {"name": "b", "server": "ftp://x", "token": "t"}], "clusters[1].server"),
    ([GOOD, {"name": "b", "server": "https://x"}], "clusters[1].token"),
    ([GOOD, {"name": "b", "server": "https://x", "token": "a b"}], "clusters[1].token"),
    ([GOOD, {"name": "b"}], "clusters[1].server"),
    ([GOOD, GOOD], "clusters[1].name"),
    ([{**GOOD, "name": "bad name!"}], "clusters[0].name"),
    ([{**GOOD, "certificate": "%%%"}], "clusters[0].certificate"),
    ([{**GOOD, "certificate": base64.b64encode(b"not a cert").decode()}], "clusters[0].certificate"),
    ([{**GOOD, "context": "kind"}], "clusters[0].context"),
    ([{"name": "a", "context": "kind", "token": "t"}], "clusters[0].token"),
    ([{**GOOD, "skipTLSVerify": "maybe"}], "clusters[0].skipTLSVerify"),
    ([{**GOOD, "tokne": "typo"}], "clusters[0].tokne"),
    (["prod"], "clusters[0]"),
])
def test_config_errors_name_the_field(clusters, field):
    with pytest.raises(ConfigError) as info:
        parse_config({"clusters": clusters})
    assert info.value.field == field
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("key, value", [("namespaces", '["Shop"]'), ("namespaces", "shop"), ("kinds", '["secrets"]'),
                                        ("kinds", '["configmaps"]')])
def test_namespaces_and_kinds_errors(key, value):
    with pytest.raises(ConfigError) as info:
        parse_config({"clusters": [GOOD], key: value})
    assert info.value.field == key


def test_no_secret_in_reprs_or_errors(ca_base64):
    config = parse_config({"clusters": [{**GOOD, "certificate": ca_base64}]})
    for text in (repr(config), str(config), repr(config.clusters[0])):
        assert SECRET not in text and ca_base64[:40] not in text and "BEGIN CERTIFICATE" not in text
    integration = Integration(id="i", name="n", type="kubernetes", config={"clusters": [GOOD]}, tenant_id=None)
    assert SECRET not in repr(integration)


def test_one_api_client_per_cluster_never_the_default_configuration():
    from kubernetes import client

    default_host = client.Configuration.get_default_copy().host
    config = parse_config({"clusters": [GOOD, {**GOOD, "name": "other", "server": "https://198.51.100.7"}]})
    a, b = (build_api_client(c) for c in config.clusters)
    assert a.configuration is not b.configuration
    assert a.configuration.host == "https://203.0.113.10:6443" and b.configuration.host == "https://198.51.100.7"
    assert a.configuration.get_api_key_with_prefix("authorization") == f"Bearer {SECRET}"
    assert client.Configuration.get_default_copy().host == default_host
    a.close()
    b.close()


# ---------------------------------------------------------------- metadata


def test_metadata_validates_and_matches_the_connector():
    registered = ConnectorTypeRegister.model_validate(METADATA)
    assert registered.id == KubernetesConnector.id == "kubernetes"
    assert load_metadata("kubernetes")["id"] == "kubernetes"
    assert list(FIELDS)[:2] == ["name", "tags"]
    assert {"clusters", "namespaces", "kinds"} <= set(FIELDS)
    clusters = FIELDS["clusters"]
    assert clusters["type"] == "textarea" and clusters["format"] == "json" and clusters["required"]
    assert clusters["itemSecrets"] == ["token"] and clusters["itemKey"] == "name"
    assert "server" in clusters["itemSecretGuards"]
    assert not FIELDS["namespaces"]["required"] and not FIELDS["kinds"]["required"]


@pytest.mark.parametrize("clusters", [
    [GOOD], [{"name": "laptop", "context": "kind-dev"}], [{"name": "here", "inCluster": True}],
    [{**GOOD, "skipTLSVerify": True}], [GOOD, {"name": "b", "context": "c", "kubeconfig": "/k"}],
])
def test_clusters_schema_accepts_what_the_connector_accepts(clusters):
    jsonschema.validate(clusters, FIELDS["clusters"]["jsonSchema"])
    parse_config({"clusters": clusters})


@pytest.mark.parametrize("clusters", [
    [], [{"name": "x"}], [{"name": "x", "server": "https://a"}], [{**GOOD, "context": "c"}],
    [{"name": "x", "server": "ftp://a", "token": "t"}], [{**GOOD, "extra": 1}],
])
def test_clusters_schema_refuses_what_the_connector_refuses(clusters):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(clusters, FIELDS["clusters"]["jsonSchema"])
    with pytest.raises(ConfigError):
        parse_config({"clusters": clusters})


def test_the_backend_masks_cluster_tokens_and_asks_them_again_when_the_server_changes(make_backend):
    from painchain_pipelines.backend.crypto import MASK

    api = make_backend("sqlite", api_token=None, secret_key=None).client()
    assert api.post("/integrations/types/register", json=METADATA).status_code in (200, 201)
    other = {"name": "laptop", "context": "kind-dev"}
    created = api.post("/integrations", json={"type": "kubernetes", "config": {
        "name": "K8s", "tags": [], "clusters": [GOOD, other], "namespaces": ["shop"]}})
    assert created.status_code == 201, created.text
    shown = created.json()["config"]["clusters"]
    assert shown[0]["token"] == MASK and SECRET not in created.text
    [read] = [i for i in api.get("/integrations", params={"type": "kubernetes"}).json()
              if i["id"] == created.json()["id"]]
    assert parse_config(read["config"]).clusters[0].token == SECRET  # the connector gets it in clear
    moved = api.put(f"/integrations/{created.json()['id']}", json={"config": {
        "name": "K8s", "tags": [], "clusters": [{**shown[0], "server": "https://attacker.example"}, other]}})
    assert moved.status_code == 422 and "must be entered again" in moved.text
    kept = api.put(f"/integrations/{created.json()['id']}", json={"config": {
        "name": "K8s", "tags": [], "clusters": [shown[0], other], "namespaces": ["shop", "payments"]}})
    assert kept.status_code == 200, kept.text
    bad = api.post("/integrations", json={"type": "kubernetes", "config": {
        "name": "K8s", "tags": [], "clusters": [{"name": "x", "server": "https://a"}]}})
    assert bad.status_code == 422 and "clusters" in bad.text
