"""An integration's Kubernetes configuration, checked with messages that name the field
(`clusters[1].server`, `namespaces`, …). Tokens and certificates never appear in a repr or message."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from painchain_pipelines.connectors.base import ConfigError
from painchain_pipelines.connectors.config_fields import boolean, http_url, json_list, pem_certificates

MAX_CLUSTERS = 20
MAX_NAMESPACES = 50
# RFC 1123 label (namespaces) and a relaxed cluster name (shown in `project` as <cluster>:<namespace>).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

# What can be followed; each kind names the resources it reads (see docs/connectors/kubernetes.md).
KINDS = ("deployments", "statefulsets", "daemonsets", "pods", "events")
_KIND_ALIASES = {
    "deployment": "deployments", "deploy": "deployments",
    "statefulset": "statefulsets", "sts": "statefulsets",
    "daemonset": "daemonsets", "ds": "daemonsets",
    "pod": "pods", "po": "pods",
    "event": "events", "ev": "events", "warnings": "events",
}


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    server: str | None = None
    token: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)  # decoded from the base64 `certificate`
    skip_tls_verify: bool = False
    context: str | None = None  # a kubeconfig context (local use)
    kubeconfig: str | None = None  # a kubeconfig file path (with `context`; default ~/.kube/config)
    in_cluster: bool = False  # the pod's service account

    @property
    def mode(self) -> str:
        return "server" if self.server else ("context" if self.context else "inCluster")

    def fingerprint(self) -> tuple:
        """What changes the connection (an edit restarts the cluster's watches)."""
        return (self.name, self.server, self.token, self.ca_pem, self.skip_tls_verify, self.context,
                self.kubeconfig, self.in_cluster)

    def __repr__(self) -> str:  # the token and the certificate are never printed
        where = self.server or (f"context {self.context}" if self.context else "in-cluster")
        return (f"ClusterConfig(name={self.name!r}, {where}, token={'set' if self.token else None}, "
                f"certificate={'set' if self.ca_pem else None}, skipTLSVerify={self.skip_tls_verify})")

    __str__ = __repr__


@dataclass(frozen=True)
class KubernetesConfig:
    clusters: tuple[ClusterConfig, ...]
    namespaces: tuple[str, ...] = ()  # () = all namespaces
    kinds: tuple[str, ...] = KINDS

    def __repr__(self) -> str:
        return f"KubernetesConfig(clusters={list(self.clusters)!r}, namespaces={self.namespaces!r}, kinds={self.kinds!r})"

    __str__ = __repr__


def _ca_certificate(value: Any, field_name: str) -> str | None:
    """The cluster's CA, as kubeconfig's `certificate-authority-data` (base64 of PEM); PEM text is
    accepted too. Checked by loading it; never echoed in the message."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ConfigError(field_name, "must be the base64 CA certificate (certificate-authority-data)")
    text = value.strip()
    if "-----BEGIN" not in text:
        try:
            text = base64.b64decode("".join(text.split()), validate=True).decode("ascii")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise ConfigError(field_name, "is not base64 (paste certificate-authority-data from the "
                                          "kubeconfig)") from None
    return pem_certificates(text, field_name)


def _cluster(item: Any, index: int, seen: set[str]) -> ClusterConfig:
    where = f"clusters[{index}]"
    if not isinstance(item, Mapping):
        raise ConfigError(where, 'must be an object like {"name": "prod", "server": "https://…", "token": "…"}')
    unknown = set(item) - {"name", "server", "token", "certificate", "skipTLSVerify", "context", "kubeconfig",
                           "inCluster"}
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}", "is not a cluster field (name, server, token, "
                                                            "certificate, skipTLSVerify, context, inCluster)")
    name = item.get("name")
    if not isinstance(name, str) or not _CLUSTER_NAME.match(name.strip()):
        raise ConfigError(f"{where}.name", "is missing or not a name (letters, digits, - _ .; at most 63)")
    name = name.strip()
    if name.lower() in seen:
        raise ConfigError(f"{where}.name", f"{name!r} is used by another cluster")
    seen.add(name.lower())

    in_cluster = boolean(item.get("inCluster"), f"{where}.inCluster")
    context = item.get("context")
    if context is not None and (not isinstance(context, str) or not context.strip()):
        raise ConfigError(f"{where}.context", "must be a kubeconfig context name")
    server = item.get("server")
    modes = [m for m, on in (("server", server not in (None, "")), ("context", bool(context)),
                             ("inCluster", in_cluster)) if on]
    if not modes:
        raise ConfigError(f"{where}.server", "is missing (or name a kubeconfig `context`, or set `inCluster`)")
    if len(modes) > 1:
        raise ConfigError(f"{where}.{modes[1]}", f"cannot be combined with {modes[0]}; give one of server, "
                                                 "context, inCluster")
    skip = boolean(item.get("skipTLSVerify"), f"{where}.skipTLSVerify")
    if "server" in modes:
        if not isinstance(server, str):
            raise ConfigError(f"{where}.server", "must be the API server's URL, e.g. https://10.0.0.1:6443")
        url = http_url(server, f"{where}.server", "", " (the API server's URL, e.g. https://203.0.113.10:6443)")
        token = item.get("token")
        if not isinstance(token, str) or not token.strip():
            raise ConfigError(f"{where}.token", "is missing (a service account token with get/list/watch)")
        if any(c.isspace() for c in token.strip()):
            raise ConfigError(f"{where}.token", "contains whitespace")
        ca = _ca_certificate(item.get("certificate"), f"{where}.certificate")
        if ca and skip:
            raise ConfigError(f"{where}.skipTLSVerify", "cannot be combined with a certificate")
        return ClusterConfig(name=name, server=url, token=token.strip(), ca_pem=ca, skip_tls_verify=skip)
    for key in ("token", "certificate"):
        if item.get(key):
            raise ConfigError(f"{where}.{key}", f"is only used with `server` (a {modes[0]} cluster brings its own)")
    kubeconfig = item.get("kubeconfig")
    if kubeconfig is not None and (not isinstance(kubeconfig, str) or not kubeconfig.strip()):
        raise ConfigError(f"{where}.kubeconfig", "must be a file path")
    return ClusterConfig(name=name, context=context.strip() if context else None,
                         kubeconfig=kubeconfig.strip() if kubeconfig else None, in_cluster=in_cluster,
                         skip_tls_verify=skip)


def parse_config(config: Mapping[str, Any]) -> KubernetesConfig:
    seen: set[str] = set()
    items = json_list(config.get("clusters"), "clusters")
    if not items:
        raise ConfigError("clusters", 'lists no cluster; e.g. [{"name": "prod", "server": "https://…", "token": "…"}]')
    if len(items) > MAX_CLUSTERS:
        raise ConfigError("clusters", f"lists more than {MAX_CLUSTERS} clusters; split the integration")
    clusters = tuple(_cluster(item, i, seen) for i, item in enumerate(items))

    namespaces: list[str] = []
    for item in json_list(config.get("namespaces"), "namespaces"):
        if not isinstance(item, str) or not _DNS_LABEL.match(item.strip()):
            raise ConfigError("namespaces", f"{item!r} is not a namespace name")
        if item.strip() not in namespaces:
            namespaces.append(item.strip())
    if len(namespaces) > MAX_NAMESPACES:
        raise ConfigError("namespaces", f"lists more than {MAX_NAMESPACES}; leave it empty to watch all")

    kinds: list[str] = []
    raw_kinds = config.get("kinds")
    for item in json_list(raw_kinds, "kinds"):
        kind = _KIND_ALIASES.get(str(item).strip().lower(), str(item).strip().lower()) if isinstance(item, str) else None
        if kind not in KINDS:
            raise ConfigError("kinds", f"{item!r} is not one of {', '.join(KINDS)}")
        if kind not in kinds:
            kinds.append(kind)
    return KubernetesConfig(clusters=clusters, namespaces=tuple(namespaces),
                            kinds=tuple(k for k in KINDS if k in kinds) if kinds else KINDS)
