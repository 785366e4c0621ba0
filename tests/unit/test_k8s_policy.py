"""An offline policy check of the rendered manifests (no cluster, no admission controller on the test
machines): the "restricted" Pod Security Standard on every pod, NetworkPolicies that admit exactly the
peers docs/deployment.md names, Redis's password from the Secret everywhere, no `replicas:` on Deployments an
autoscaler owns. Rendered with `kubectl kustomize` when it is installed, else the manifests as written
(kustomize's transformations here touch names, labels and images, not the fields checked)."""

from __future__ import annotations

import ipaddress
import shutil
from typing import Any

import pytest

from tests.unit.test_k8s import documents, env_file, render

# The Pod Security Standard "restricted" (kubernetes.io/docs/concepts/security/pod-security-standards),
# the checks that apply to these manifests.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SERVICE_PODS = ("api", "grpc", "worker", "worker-gpu")
WORKLOADS = ("Deployment", "StatefulSet")


@pytest.fixture(scope="module", params=["", "gpu", "monitored"])
def objects(request, tmp_path_factory) -> list[dict]:
    if shutil.which("kubectl") is None:
        return [doc for _, doc in documents()]
    return render(tmp_path_factory.mktemp("render"), request.param)


def pods(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in objects if o["kind"] in WORKLOADS}


def violations(pod: dict) -> list[str]:
    """What keeps `pod` (a pod spec) from the restricted profile; [] when it passes."""
    found = []
    context = pod.get("securityContext", {})
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            found.append(host)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: {kinds}")
    for c in pod.get("initContainers", []) + pod["containers"]:
        own = c.get("securityContext", {})
        name = c["name"]
        if own.get("privileged"):
            found.append(f"{name}: privileged")
        if own.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation not false")
        caps = own.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or not set(caps.get("add", [])) <= {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities must drop ALL")
        if not own.get("runAsNonRoot", context.get("runAsNonRoot")):
            found.append(f"{name}: runAsNonRoot")
        if own.get("runAsUser", context.get("runAsUser")) == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = own.get("seccompProfile", context.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile {seccomp}")
        if not own.get("readOnlyRootFilesystem"):  # beyond the profile: every process here allows it
            found.append(f"{name}: readOnlyRootFilesystem")
        if any("hostPort" in p for p in c.get("ports", [])):
            found.append(f"{name}: hostPort")
    return found


def test_every_pod_meets_the_restricted_pod_security_standard(objects):
    assert set(SERVICE_PODS[:3]) | {"redis"} <= set(pods(objects))
    for name, pod in pods(objects).items():
        assert violations(pod) == [], name


def test_the_policy_check_catches_what_the_profile_forbids():
    good = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}}
    container = {
        "name": "c",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    assert violations({**good, "containers": [container]}) == []
    assert violations({"containers": [container]})  # no seccomp profile, no runAsNonRoot
    escalating = {**container, "securityContext": {**container["securityContext"], "allowPrivilegeEscalation": True}}
    assert violations({**good, "containers": [escalating]})
    assert violations({**good, "containers": [container], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]})


def test_the_namespace_enforces_the_restricted_profile(objects):
    (namespace,) = [o for o in objects if o["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_no_autoscaled_deployment_sets_replicas(objects):
    scaled = {
        o["spec"]["scaleTargetRef"]["name"] for o in objects if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
    }
    assert {"api", "worker"} <= scaled
    for o in objects:
        if o["kind"] == "Deployment" and o["metadata"]["name"] in scaled:
            assert "replicas" not in o["spec"], o["metadata"]["name"]


def test_redis_requires_the_password_every_component_gets_from_the_secret(objects):
    assert "REDIS_PASSWORD" in env_file("secrets.env.example")
    generated = [o["metadata"]["name"] for o in objects if o["kind"] == "Secret"]
    secret = generated[0] if generated else "inference-secrets"  # rendered: the hash-suffixed name
    (redis,) = pods(objects)["redis"]["containers"]
    assert redis["args"][redis["args"].index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    password = next(e for e in redis["env"] if e["name"] == "REDIS_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "REDIS_PASSWORD"}
    for name in SERVICE_PODS:
        for c in pods(objects).get(name, {"containers": []})["containers"]:
            assert {"secretRef": {"name": secret}} in c["envFrom"], name
    for scaled in (o for o in objects if o["kind"] == "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["authenticationRef"]["name"] == "redis-auth"


# NetworkPolicies, evaluated: which peers may open which ports. A peer is (namespace, pod labels).
Peer = tuple[str, dict[str, str]]


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for rule in selector.get("matchExpressions", []):
        present, value = rule["key"] in labels, labels.get(rule["key"])
        if rule["operator"] == "In" and value not in rule["values"]:
            return False
        if rule["operator"] == "NotIn" and value in rule["values"]:
            return False
        if rule["operator"] == "Exists" and not present:
            return False
    return True


def _peer_admitted(rule_peer: dict[str, Any], peer: Peer, own_namespace: str) -> bool:
    namespace, labels = peer
    if "ipBlock" in rule_peer:
        return False  # pods are admitted by selectors here; ipBlocks are checked on their own
    if "namespaceSelector" in rule_peer:
        if not _matches(rule_peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
            return False
    elif namespace != own_namespace:
        return False
    return _matches(rule_peer.get("podSelector", {}), labels)


def admits_ingress(objects: list[dict], target: dict[str, str], peer: Peer, port: int) -> bool:
    """Whether the policies let `peer` open TCP `port` on a pod labelled `target` (namespace inference)."""
    allowed = False
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        spec = policy["spec"]
        if "Ingress" not in spec["policyTypes"] or not _matches(spec["podSelector"], target):
            continue
        for rule in spec.get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if ports and port not in ports:
                continue
            if any(_peer_admitted(p, peer, "inference") for p in rule.get("from", [])):
                allowed = True
    return allowed


def pod(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "inference"}


def test_a_default_deny_policy_selects_every_pod_for_ingress_and_egress(objects):
    policies = [o["spec"] for o in objects if o["kind"] == "NetworkPolicy"]
    assert any(
        p["podSelector"] == {}
        and set(p["policyTypes"]) == {"Ingress", "Egress"}
        and not p.get("ingress")
        and not p.get("egress")
        for p in policies
    )


@pytest.mark.parametrize(
    ("peer", "admitted"),
    [
        (("inference", pod("api")), True),
        (("inference", pod("grpc")), True),
        (("inference", pod("worker")), True),
        (("inference", pod("worker-gpu")), True),
        (("keda", {"app": "keda-operator"}), True),
        (("inference", pod("debug-shell")), False),
        (("default", pod("api")), False),
        (("ingress-nginx", {"app": "controller"}), False),
    ],
)
def test_redis_is_reachable_only_from_the_api_grpc_workers_and_keda(objects, peer, admitted):
    assert admits_ingress(objects, pod("redis"), peer, 6379) is admitted


@pytest.mark.parametrize(
    ("peer", "admitted"),
    [
        (("ingress-nginx", {"app": "controller"}), True),
        (("monitoring", {"app": "prometheus"}), True),
        (("inference", pod("worker")), False),
        (("default", {"app": "anything"}), False),
    ],
)
def test_the_api_is_reachable_from_the_ingress_and_prometheus_only(objects, peer, admitted):
    assert admits_ingress(objects, pod("api"), peer, 8000) is admitted


def test_https_egress_for_webhooks_and_storage_excludes_private_and_metadata_addresses(objects):
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "https-egress"]
    (rule,) = policy["spec"]["egress"]
    (peer,) = rule["to"]
    assert [p["port"] for p in rule["ports"]] == [443]
    excluded = [ipaddress.ip_network(c) for c in peer["ipBlock"]["except"]]
    for address in ("10.0.0.1", "172.20.0.1", "192.168.1.1", "169.254.169.254"):
        assert any(ipaddress.ip_address(address) in net for net in excluded), address
    assert not _matches(policy["spec"]["podSelector"], pod("grpc"))  # the gRPC server calls nothing outside
    assert _matches(policy["spec"]["podSelector"], pod("worker"))
