"""Kubernetes manifests for serving a repository with the NGC Triton image, written by the repository
builder (`diffusegae build-repo --deploy DIR`) so that every value that must agree with it does: ports
(the launcher's), /dev/shm (the python backend moves tensors through it), the repository path inside the
image, the exit timeout against the pod's grace period, the health endpoints the launcher itself waits on.

    deploy/Dockerfile        the NGC image + this package + the project's model_repository and checkpoint
    deploy/kubernetes.json   a v1 List: Deployment (probes, GPU limit, memory-backed /dev/shm), a
                             headless Service for client-side gRPC balancing (`Client("dns:///diffusegae-triton-headless:8001")`
                             resolves to every pod), a ClusterIP Service, a HorizontalPodAutoscaler on
                             Triton's queue time (via a Prometheus adapter rule, as Triton's Helm chart does)
                             with CPU as a fallback, a PodDisruptionBudget, and the adapter's rule
    deploy/kserve.json       the same server as a KServe InferenceService (custom predictor container)

JSON (which kubectl reads as it reads YAML) keeps the builder free of a YAML dependency and its output
byte-stable. The Kubernetes objects are validated offline against the official schemas
(tests/server/test_deploy.py); nothing here has run on a cluster (none is reachable from here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diffusegae.paths import PROJECT, SHIPPED_REPOSITORY
from diffusegae.server.launcher import CONTAINER_SHM_BYTES, DEFAULT_PORTS, NGC_IMAGE

NAME = "diffusegae-triton"
IMAGE = f"{NAME}:latest"  # built from deploy/Dockerfile
PROJECT_IN_IMAGE = "/opt/diffusegae"
EXIT_TIMEOUT_S = 30
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "diffusegae"}
# Triton's cumulative queue time and request count per model; the adapter turns them into a per-pod rate.
QUEUE_METRIC = "avg_time_queue_us"
QUEUE_TARGET_US = 50_000  # scale out when requests wait more than 50 ms on average


def repository_in_image(repository: Path = SHIPPED_REPOSITORY) -> str:
    """Where the repository lies inside the image (the project is copied to PROJECT_IN_IMAGE)."""
    return f"{PROJECT_IN_IMAGE}/{Path(repository).resolve().relative_to(PROJECT).as_posix()}"


def tritonserver_args(repository: str) -> list[str]:
    return [
        f"--model-repository={repository}",
        "--model-control-mode=none",
        "--exit-on-error=true",
        f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
        *(f"--{kind}-port={port}" for kind, port in DEFAULT_PORTS.items()),
    ]


def _object(api_version: str, kind: str, name: str = NAME, **body: Any) -> dict[str, Any]:
    """A Kubernetes object of ours: its header (named, with the project's labels), then `body`."""
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "labels": LABELS}, **body}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


def deployment(repository: str, replicas: int = 2, image: str = IMAGE) -> dict[str, Any]:
    shm_gib = CONTAINER_SHM_BYTES >> 30
    container = {
        "name": "tritonserver",
        "image": image,
        "command": ["tritonserver"],
        "args": tritonserver_args(repository),
        "env": [{"name": "OMP_WAIT_POLICY", "value": "PASSIVE"}],
        "ports": [{"name": kind, "containerPort": port} for kind, port in DEFAULT_PORTS.items()],
        "resources": {
            "requests": {"cpu": "2", "memory": "4Gi"},
            "limits": {"memory": "8Gi", "nvidia.com/gpu": 1},
        },
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "readinessProbe": _probe("/v2/health/ready", 5, 2),
        # models load (ONNX Runtime sessions, python stubs) before ready: up to 5 minutes
        "startupProbe": _probe("/v2/health/ready", 10, 30),
    }
    return _object(
        "apps/v1",
        "Deployment",
        spec={
            "replicas": replicas,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {
                    "labels": LABELS,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(DEFAULT_PORTS["metrics"]),
                    },
                },
                "spec": {
                    # SIGTERM → Triton drains for its exit timeout; give it that and a margin to unload
                    "terminationGracePeriodSeconds": EXIT_TIMEOUT_S + 30,
                    "containers": [container],
                    "volumes": [
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_gib}Gi"}}
                    ],
                },
            },
        },
    )


def _ports(kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"name": k, "port": DEFAULT_PORTS[k], "targetPort": k} for k in kinds]


def services() -> list[dict[str, Any]]:
    # one DNS record per ready pod: gRPC clients balance themselves (a ClusterIP pins one connection)
    headless = {"clusterIP": "None", "selector": LABELS, "ports": _ports(("grpc",))}
    cluster = {"type": "ClusterIP", "selector": LABELS, "ports": _ports(("http", "grpc", "metrics"))}
    return [
        _object("v1", "Service", f"{NAME}-headless", spec=headless),
        _object("v1", "Service", spec=cluster),
    ]


def autoscaler(min_replicas: int = 1, max_replicas: int = 8) -> dict[str, Any]:
    return _object(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": QUEUE_METRIC},
                        "target": {"type": "AverageValue", "averageValue": str(QUEUE_TARGET_US)},
                    },
                },
                # without the adapter (or between scrapes) the CPU still scales it
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                },
            ],
        },
    )


def disruption_budget() -> dict[str, Any]:
    return _object(
        "policy/v1", "PodDisruptionBudget", spec={"minAvailable": 1, "selector": {"matchLabels": LABELS}}
    )


def adapter_rule() -> dict[str, Any]:
    """prometheus-adapter's rule for QUEUE_METRIC: queue time per request over the last 30 s, per pod."""
    query = (
        "avg(delta(nv_inference_queue_duration_us{<<.LabelMatchers>>}[30s]) / "
        "(1 + delta(nv_inference_request_success{<<.LabelMatchers>>}[30s]))) by (<<.GroupBy>>)"
    )
    rule = (
        "rules:\n"
        '- seriesQuery: \'nv_inference_queue_duration_us{namespace!="",pod!=""}\'\n'
        "  resources:\n"
        "    overrides:\n"
        "      namespace: {resource: namespace}\n"
        "      pod: {resource: pod}\n"
        "  name:\n"
        "    matches: nv_inference_queue_duration_us\n"
        f"    as: {QUEUE_METRIC}\n"
        f"  metricsQuery: '{query}'\n"
    )
    return _object("v1", "ConfigMap", f"{NAME}-adapter-rules", data={"config.yaml": rule})


def inference_service(repository: str, image: str = IMAGE) -> dict[str, Any]:
    pod = deployment(repository, image=image)["spec"]["template"]["spec"]
    predictor = {
        "minReplicas": 1,
        "maxReplicas": 8,
        "containers": [{**pod["containers"][0], "name": "kserve-container"}],
        "volumes": pod["volumes"],
    }
    return _object("serving.kserve.io/v1beta1", "InferenceService", spec={"predictor": predictor})


def dockerfile() -> str:
    return (
        "# Written by diffusegae.server.deploy: the NGC Triton image with this project (its package, the\n"
        "# generated model_repository and the shipped checkpoint). Build from the project root:\n"
        f"#   docker build -f deploy/Dockerfile -t {IMAGE} .\n"
        f"FROM {NGC_IMAGE}\n"
        f"COPY . {PROJECT_IN_IMAGE}\n"
        f"RUN pip install --no-cache-dir {PROJECT_IN_IMAGE} 'numpy<2' && \\\n"
        f"    python -m diffusegae.cli export --checkpoint {PROJECT_IN_IMAGE}/checkpoints/tiny32\n"
    )


def manifests(repository: Path = SHIPPED_REPOSITORY) -> dict[str, dict[str, Any]]:
    """File name → its object (kubernetes.json: a v1 List of the cluster objects)."""
    path = repository_in_image(repository)
    items = [deployment(path), *services(), autoscaler(), disruption_budget(), adapter_rule()]
    return {
        "kubernetes.json": {"apiVersion": "v1", "kind": "List", "items": items},
        "kserve.json": inference_service(path),
    }


def write_manifests(out_dir: str | Path, repository: Path = SHIPPED_REPOSITORY) -> list[Path]:
    """Write deploy/ (the manifests and the Dockerfile) into `out_dir`; returns the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: json.dumps(obj, indent=2) + "\n" for name, obj in manifests(repository).items()}
    files["Dockerfile"] = dockerfile()
    for name, text in files.items():
        (out / name).write_text(text)
    return [out / name for name in files]
