"""deploy/: what the repository builder writes, valid against the Kubernetes schemas (offline), and every
value that must agree with the server agrees: ports, probes, /dev/shm, the repository path, grace period."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest

from diffusegae.paths import PROJECT, SHIPPED_REPOSITORY
from diffusegae.server import deploy
from diffusegae.server.launcher import CONTAINER_SHM_BYTES, DEFAULT_PORTS

K8S_VERSION = "1.30.0"  # the oldest release still in upstream support when this was written
DEPLOY = PROJECT / "deploy"


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deploy")
    deploy.write_manifests(out)
    return out


def _items(folder: Path) -> dict[str, dict]:
    listed = json.loads((folder / "kubernetes.json").read_text())
    assert listed["kind"] == "List"
    return {item["kind"]: item for item in listed["items"]}


def test_the_checked_in_deploy_folder_is_what_the_builder_writes(written):
    for name in ("kubernetes.json", "kserve.json", "Dockerfile"):
        assert (DEPLOY / name).read_text() == (written / name).read_text(), f"rebuild deploy/{name}"


@pytest.mark.parametrize(
    "kind", ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"]
)
def test_every_object_is_valid_kubernetes(written, kind):
    listed = json.loads((written / "kubernetes.json").read_text())
    objects = [item for item in listed["items"] if item["kind"] == kind]
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)  # raises on any unknown or wrong field


def test_a_broken_object_is_refused_by_the_validator(written):
    broken = _items(written)["Deployment"]
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_values_agree_with_the_server(written):
    items = _items(written)
    pod = items["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == DEFAULT_PORTS  # the launcher's ports
    args = container["args"]
    assert {f"--{k}-port={v}" for k, v in DEFAULT_PORTS.items()} <= set(args)
    repository = next(a.split("=", 1)[1] for a in args if a.startswith("--model-repository="))
    in_project = Path(repository).relative_to(deploy.PROJECT_IN_IMAGE)
    assert (PROJECT / in_project).resolve() == SHIPPED_REPOSITORY.resolve()
    assert (PROJECT / in_project / "edit" / "config.pbtxt").is_file()
    assert "--model-control-mode=none" in args
    # probes on the endpoints the launcher waits on, by port name
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    (volume,) = pod["spec"]["volumes"]
    assert container["volumeMounts"] == [{"name": volume["name"], "mountPath": "/dev/shm"}]
    assert volume["emptyDir"] == {"medium": "Memory", "sizeLimit": f"{CONTAINER_SHM_BYTES >> 30}Gi"}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    exit_timeout = int(next(a.split("=")[1] for a in args if a.startswith("--exit-timeout-secs=")))
    assert pod["spec"]["terminationGracePeriodSeconds"] > exit_timeout
    labels = pod["metadata"]["labels"]
    assert items["Deployment"]["spec"]["selector"]["matchLabels"] == labels
    assert items["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert (
        items["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == items["Deployment"]["metadata"]["name"]
    )


def test_services_balance_grpc_on_the_client_side(written):
    listed = json.loads((written / "kubernetes.json").read_text())
    services = {s["metadata"]["name"]: s["spec"] for s in listed["items"] if s["kind"] == "Service"}
    headless = services[f"{deploy.NAME}-headless"]
    assert headless["clusterIP"] == "None" and [p["port"] for p in headless["ports"]] == [
        DEFAULT_PORTS["grpc"]
    ]
    for spec in services.values():
        assert all(p["targetPort"] in DEFAULT_PORTS for p in spec["ports"])  # container port names
        assert all(p["port"] == DEFAULT_PORTS[p["targetPort"]] for p in spec["ports"])


def test_the_autoscaler_reads_the_queue_time_the_adapter_rule_defines(written):
    items = _items(written)
    hpa = items["HorizontalPodAutoscaler"]["spec"]
    pods, cpu = hpa["metrics"]
    assert pods["pods"]["metric"]["name"] == deploy.QUEUE_METRIC and cpu["resource"]["name"] == "cpu"
    rule = items["ConfigMap"]["data"]["config.yaml"]
    assert f"as: {deploy.QUEUE_METRIC}" in rule and "nv_inference_queue_duration_us" in rule


def test_the_kserve_service_runs_the_same_container(written):
    isvc = json.loads((written / "kserve.json").read_text())
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    (container,) = isvc["spec"]["predictor"]["containers"]
    pod = _items(written)["Deployment"]["spec"]["template"]["spec"]
    assert (
        container["args"] == pod["containers"][0]["args"]
        and container["image"] == pod["containers"][0]["image"]
    )
    # a predictor is a pod spec: the container part is checked against the core schema
    kubernetes_validate.validate(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "x"},
            "spec": {"containers": [container], "volumes": isvc["spec"]["predictor"]["volumes"]},
        },
        K8S_VERSION,
        strict=True,
    )
