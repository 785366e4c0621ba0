"""deploy/k8s validated offline (no cluster on the test machines): every manifest against the Kubernetes
schemas (kubernetes-validate, strict), KEDA's ScaledObjects field by field (a CRD: not in those schemas),
probes that do not cascade, grace periods longer than each drain, and resources on every container."""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml
from rq import Queue

from shared import fair
from shared.config import PROJECT_ROOT, Settings

K8S = os.path.join(PROJECT_ROOT, "deploy", "k8s")
BASE = os.path.join(K8S, "base")
SERVICEMONITOR = os.path.join(K8S, "components", "servicemonitor")
KUSTOMIZATIONS = (K8S, BASE, os.path.join(K8S, "gpu"), SERVICEMONITOR, os.path.join(K8S, "components", "keda-by-key"))
CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")  # custom resources: not in the Kubernetes schemas
KUBERNETES_VERSION = "1.37.0"  # the newest schemas kubernetes-validate 1.37.0 ships
API_DRAIN_S = 5 + 35  # preStop sleep, then the API server's drain (api/serve.py DRAIN_S, gunicorn's graceful_timeout)
WORKER_DRAIN_S = 45  # the micro-batch in hand plus the webhook call in hand (WEBHOOK_TIMEOUT_S + 5), with room
LIVENESS = ["python", "-m", "worker.liveness", "--max-age-s", "60"]
# Variables the manifests may set that are not Settings fields: the AWS SDK's own.
AWS_VARIABLES = {"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def manifest_files() -> list[str]:
    files = glob.glob(os.path.join(K8S, "**", "*.yaml"), recursive=True)
    return sorted(f for f in files if os.path.basename(f) not in ("kustomization.yaml", "kustomizeconfig.yaml"))


def documents() -> list[tuple[str, dict]]:
    found = []
    for path in manifest_files():
        with open(path) as f:
            found += [(os.path.relpath(path, K8S), doc) for doc in yaml.safe_load_all(f) if doc]
    return found


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == kind}


def container(deployment: str) -> dict:
    (only,) = by_kind("Deployment")[deployment]["spec"]["template"]["spec"]["containers"]
    return only


def kustomization(folder: str = BASE) -> dict:
    with open(os.path.join(folder, "kustomization.yaml")) as f:
        return yaml.safe_load(f)


def env_file(name: str) -> dict[str, str]:
    """A kustomize env file of base/ (config.env, secrets.env.example) as a dict."""
    with open(os.path.join(BASE, name)) as f:
        lines = [line.strip() for line in f if "=" in line and not line.lstrip().startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def config() -> dict[str, str]:
    """The settings of the generated ConfigMap inference-config."""
    return env_file("config.env")


@pytest.mark.parametrize(
    ("path", "doc"),
    [d for d in documents() if not d[1]["apiVersion"].startswith(CRD_GROUPS)],
    ids=lambda v: v if isinstance(v, str) else f"{v['kind']}/{v['metadata']['name']}",
)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(path, doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_manifest_is_listed_in_a_kustomization_and_every_listed_file_exists():
    listed = set()
    for folder in KUSTOMIZATIONS:
        for resource in kustomization(folder).get("resources", []):
            path = os.path.normpath(os.path.join(folder, resource))
            assert os.path.exists(path), f"{resource} listed in {folder} does not exist"
            listed.add(path)
    assert set(manifest_files()) <= listed


def test_keys_come_from_a_generated_secret_that_must_be_filled_in():
    (generator,) = kustomization()["secretGenerator"]
    assert generator["name"] == "inference-secrets" and generator["envs"] == ["secrets.env"]
    assert {"API_KEYS", "WEBHOOK_SECRET", "REDIS_PASSWORD", "METRICS_TOKEN"} <= set(env_file("secrets.env.example"))


def test_the_configmap_is_generated_and_sets_only_known_settings_and_allow_lists_webhook_hosts():
    assert "ConfigMap" not in {doc["kind"] for _, doc in documents()}  # generated, so a change rolls the pods
    (generator,) = kustomization()["configMapGenerator"]
    assert generator == {"name": "inference-config", "envs": ["config.env"]}
    data = config()
    known = {f.name.upper() for f in dataclasses.fields(Settings)} | AWS_VARIABLES
    assert set(data) <= known
    assert data["WEBHOOK_ALLOWED_HOSTS"] and data["STORAGE_URL"].startswith("s3://")


def test_api_readiness_asks_only_redis_and_liveness_cannot_queue_behind_long_polls():
    api = container("api")
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz?scope=api"
    assert "tcpSocket" in api["livenessProbe"] and "httpGet" not in api["livenessProbe"]
    assert "tcpSocket" in container("grpc")["livenessProbe"]


@pytest.mark.parametrize("name", ["worker", "worker-gpu"])
def test_workers_are_restarted_when_their_liveness_file_goes_stale(name):
    worker = container(name)
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["LIVENESS_FILE"].startswith("/tmp/")
    assert worker["livenessProbe"]["exec"]["command"] == LIVENESS
    assert worker["startupProbe"]["exec"]["command"] == LIVENESS
    startup = worker["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # time to load a model
    assert "readinessProbe" not in worker


def test_grace_periods_outlast_each_drain():
    deployments = by_kind("Deployment")
    for name in ("api", "grpc"):
        assert deployments[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > API_DRAIN_S
    for name in ("worker", "worker-gpu"):
        assert deployments[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > WORKER_DRAIN_S


def test_every_container_has_requests_and_a_memory_limit_and_runs_unprivileged():
    for kind in ("Deployment", "StatefulSet"):
        for name, doc in by_kind(kind).items():
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            for c in pod["containers"]:
                assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
                assert "memory" in c["resources"]["limits"], name
                assert c["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_redis_keeps_an_append_only_file_on_a_volume_and_never_evicts():
    redis = by_kind("StatefulSet")["redis"]
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"


def test_disruption_budgets_keep_an_api_pod_and_drain_workers_one_at_a_time():
    budgets = by_kind("PodDisruptionBudget")
    assert budgets["api"]["spec"]["minAvailable"] == 1
    assert budgets["worker"]["spec"]["maxUnavailable"] == 1


def test_the_api_scales_on_cpu():
    hpa = by_kind("HorizontalPodAutoscaler")["api"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and hpa["spec"]["minReplicas"] >= 2


@pytest.mark.parametrize("name", ["worker", "worker-gpu"])
def test_keda_scales_each_worker_deployment_on_the_rq_queue_lists(name):
    scaled = by_kind("ScaledObject")[name]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= {
        "scaleTargetRef",
        "minReplicaCount",
        "maxReplicaCount",
        "pollingInterval",
        "cooldownPeriod",
        "triggers",
        "advanced",
        "fallback",
        "idleReplicaCount",
    }
    assert spec["scaleTargetRef"] == {"name": name} and name in by_kind("Deployment")
    assert 0 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    data = config()
    queues = {Queue.redis_queue_namespace_prefix + data[n] for n in ("QUEUE_NAME", "BULK_QUEUE_NAME")}
    assert {t["metadata"]["listName"] for t in spec["triggers"]} == queues
    for trigger in spec["triggers"]:
        meta = trigger["metadata"]
        assert trigger["type"] == "redis" and trigger["authenticationRef"] == {"name": "redis-auth"}
        assert set(meta) <= {
            "address",
            "host",
            "port",
            "databaseIndex",
            "listName",
            "listLength",
            "activationListLength",
            "enableTLS",
            "addressFromEnv",
            "passwordFromEnv",
        }
        assert meta["address"] == f"redis.{kustomization()['namespace']}.svc.cluster.local:6379"
        # KEDA reads these as strings; a YAML integer here is rejected by its webhook.
        assert all(isinstance(meta[k], str) for k in ("listLength", "activationListLength", "databaseIndex"))
        assert int(meta["listLength"]) >= 1


def test_gpu_workers_take_one_gpu_each_and_grow_gpu_memory():
    gpu = container("worker-gpu")
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1 == gpu["resources"]["requests"]["nvidia.com/gpu"]
    env = {e["name"]: e.get("value") for e in gpu["env"]}
    assert env["TF_GPU_MEMORY_GROWTH"] == "true"
    assert int(env["MAX_MICROBATCH_ROWS"]) > 256 and float(env["MAX_MICROBATCH_DELAY_MS"]) > 0
    assert by_kind("ScaledObject")["worker-gpu"]["spec"]["minReplicaCount"] == 0


def test_every_image_of_ours_is_renamed_by_a_kustomization_and_public_ones_are_pinned_by_digest():
    ours = {i["name"] for folder in KUSTOMIZATIONS for i in kustomization(folder).get("images", [])}
    for kind in ("Deployment", "StatefulSet"):
        for doc in by_kind(kind).values():
            for c in doc["spec"]["template"]["spec"]["containers"]:
                assert c["image"] in ours or re.fullmatch(r"[^@]+:[^@]+@sha256:[0-9a-f]{64}", c["image"]), c["image"]


def test_keda_reads_the_redis_password_from_the_secret_every_component_uses():
    auth = by_kind("TriggerAuthentication")["redis-auth"]
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "inference-secrets", "key": "REDIS_PASSWORD"}
    ]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for `kubectl kustomize`) is not installed")
@pytest.mark.parametrize("overlay", ["", "gpu", "monitored", "keyed"])
def test_the_kustomizations_render_to_valid_objects_in_one_namespace(tmp_path, overlay):
    objects = render(tmp_path, overlay)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("ScaledObject", "worker") in kinds and (("Deployment", "worker-gpu") in kinds) == (overlay == "gpu")
    assert (("ServiceMonitor", "api") in kinds) == (overlay in ("monitored", "keyed"))
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    generated = secret["metadata"]["name"]
    assert generated.startswith("inference-secrets-")  # the hash suffix: a changed secret rolls the pods
    for o in objects:
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == "inference", o["metadata"]["name"]
        if not o["apiVersion"].startswith(CRD_GROUPS):
            kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        if o["kind"] == "Deployment":
            for c in o["spec"]["template"]["spec"]["containers"]:
                assert c["image"].startswith("registry.example.com/"), c["image"]
                refs = {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
                assert refs == {generated}
        if o["kind"] == "TriggerAuthentication":
            assert {r["name"] for r in o["spec"]["secretTargetRef"]} == {generated}
        if o["kind"] == "ServiceMonitor":
            assert o["spec"]["endpoints"][0]["authorization"]["credentials"]["name"] == generated


COMPONENTS = {"monitored": ["servicemonitor"], "keyed": ["servicemonitor", "keda-by-key"]}


def render(tmp_path, overlay: str) -> list[dict]:
    """`kubectl kustomize` of a copy of deploy/k8s with the example secrets filled in; overlays "monitored"
    and "keyed" are the base with the components enabled as the kustomizations say (COMPONENTS)."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    shutil.copy(copy / "base" / "secrets.env.example", copy / "base" / "secrets.env")
    if overlay in COMPONENTS:
        text = (copy / "base" / "kustomization.yaml").read_text()
        enabled = text.replace(
            "# components:\n#   - ../components/servicemonitor",
            "components:\n" + "".join(f"  - ../components/{c}\n" for c in COMPONENTS[overlay]),
        )
        assert enabled != text
        (copy / "base" / "kustomization.yaml").write_text(enabled)
        overlay = ""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(copy / overlay)], capture_output=True, text=True, timeout=120, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def test_building_without_secrets_env_fails_rather_than_starting_without_keys(tmp_path):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (for `kubectl kustomize`) is not installed")
    shutil.copytree(K8S, tmp_path / "k8s")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path / "k8s")], capture_output=True, text=True, timeout=120, check=False
    )
    assert rendered.returncode != 0 and "secrets.env" in rendered.stderr


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for `kubectl kustomize`) is not installed")
def test_with_api_keys_keda_can_scale_on_every_keys_waiting_jobs_through_prometheus(tmp_path):
    scaled = {o["metadata"]["name"]: o for o in render(tmp_path, "keyed") if o["kind"] == "ScaledObject"}
    (trigger,) = scaled["worker"]["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "prometheus" and all(isinstance(v, str) for v in meta.values())
    query = meta["query"]
    assert query.startswith("sum(max by (queue) (inference_queued_jobs{")  # each queue once, whatever the API pods
    pattern = re.search(r'queue=~"([^"]*)"', query).group(1)
    data = config()
    lanes = [data["QUEUE_NAME"], data["BULK_QUEUE_NAME"]]
    for queue in [*lanes, *(fair.sub_queue(lane, "team-a") for lane in lanes)]:
        assert re.fullmatch(pattern, queue), queue
    assert not re.fullmatch(pattern, f"{data['QUEUE_NAME']}-other")  # another model's queue: its own pool
