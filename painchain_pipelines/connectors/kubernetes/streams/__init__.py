"""The Kubernetes streams: one module per kind of event (its resources, handler and window read)."""

from painchain_pipelines.connectors.kubernetes.streams.base import Ctx, Stream, Tuning, new_memory
from painchain_pipelines.connectors.kubernetes.streams.events import Events
from painchain_pipelines.connectors.kubernetes.streams.pods import Pods
from painchain_pipelines.connectors.kubernetes.streams.workloads import Workloads

WORKLOADS, PODS, EVENTS = Workloads(), Pods(), Events()
STREAMS = (WORKLOADS, PODS, EVENTS)
# Resource -> the stream handling it. Order matters for a first listing: workloads before their
# revision records (ReplicaSets, ControllerRevisions), so that those find their owner.
STREAM_OF = {
    "deployments": WORKLOADS, "statefulsets": WORKLOADS, "daemonsets": WORKLOADS,
    "replicasets": WORKLOADS, "controllerrevisions": WORKLOADS, "pods": PODS, "events": EVENTS,
}
# Configured kinds -> the resources read for them.
RESOURCES_OF_KIND = {
    "deployments": ("deployments", "replicasets"),
    "statefulsets": ("statefulsets", "controllerrevisions"),
    "daemonsets": ("daemonsets", "controllerrevisions"),
    "pods": ("pods",),
    "events": ("events",),
}


def resources_for(kinds: tuple[str, ...]) -> tuple[str, ...]:
    wanted = {r for kind in kinds for r in RESOURCES_OF_KIND[kind]}
    return tuple(r for r in STREAM_OF if r in wanted)


__all__ = ["EVENTS", "PODS", "STREAMS", "STREAM_OF", "WORKLOADS", "Ctx", "Events", "Pods", "Stream", "Tuning",
           "Workloads", "new_memory", "resources_for"]
