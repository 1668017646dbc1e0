"""Two watch segments through the orchestration's BackendWatchSession (no Dagster): events are
stored in the backend once, the state is saved there, the next segment resumes without replaying."""

from __future__ import annotations

import datetime as dt
import json
import threading

from painchain_pipelines.connectors.backend_client import BackendClient
from painchain_pipelines.orchestration.watch import watch_segment
from painchain_pipelines.paths import METADATA_DIR
from tests.kubernetes.conftest import M, caught_up, cluster_entry, wait_until

SEGMENT = dt.timedelta(seconds=2.5)


def test_segments_store_events_once_and_resume_from_the_backend_state(make_backend, world, fake, connector):
    api = make_backend("sqlite", api_token=None, secret_key=None).client()
    metadata = json.loads((METADATA_DIR / "kubernetes.json").read_text())
    assert api.post("/integrations/types/register", json=metadata).status_code in (200, 201)
    created = api.post("/integrations", json={"type": "kubernetes", "config": {
        "name": "K8s", "tags": ["prod"], "clusters": [cluster_entry(fake)]}})
    assert created.status_code == 201, created.text
    integration_id = created.json()["id"]
    backend_client = BackendClient(api.api_url, retries=0)
    d = world.apply_deployment("shop", "api", image="reg/shop/api:1.4.0", replicas=2)

    class Saved:  # what caught_up reads: the state the backend holds
        @property
        def states(self):
            return {integration_id: api.get(f"/integrations/{integration_id}/sync").json().get("state") or {}}

    def segment(during):
        outcome = {}
        thread = threading.Thread(target=lambda: outcome.update(result=watch_segment(
            connector, backend_client, "kubernetes", SEGMENT, threading.Event())), daemon=True)
        thread.start()
        during()
        thread.join(20)
        assert not thread.is_alive()
        return outcome["result"]

    def first():
        wait_until(lambda: caught_up(Saved(), world, integration_id), what="first listing saved")
        world.advance(M)
        world.rollout(d, image="reg/shop/api:1.5.0")
        world.crash_loop(d, restarts=2)
        wait_until(lambda: caught_up(Saved(), world, integration_id), what="changes saved")

    outcomes, _ = segment(first)
    assert [o.error for o in outcomes] == [None]
    ids = _external_ids(api, integration_id)
    assert len(ids) == len(set(ids)) and f"k8s:{d.uid}:rev:2" in ids
    assert sum(":exit:" in i for i in ids) == 2

    world.advance(M)
    world.scale(d, 3)  # while no segment runs

    def second():
        wait_until(lambda: caught_up(Saved(), world, integration_id), what="resumed")

    segment(second)
    again = _external_ids(api, integration_id)
    assert len(again) == len(set(again))
    assert sorted(set(again) - set(ids)) == [f"k8s:{d.uid}:gen:{d.generation}:scaled"]


def _external_ids(api, integration_id: str) -> list[str]:
    page = api.get("/events", params={"integrationId": integration_id, "limit": 500}).json()
    return [e["externalId"] for e in page["events"]]
