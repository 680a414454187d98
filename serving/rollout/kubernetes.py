"""The kubernetes runtime: Deployment and Service manifests for the serving image, validated
against the Kubernetes schema (applying them is the cluster's CD's job; its rolling update with
readiness gates switches versions without dropping requests)."""

from __future__ import annotations

from pathlib import Path

from fti.ground.settings import Settings


def render_manifests(tag: str, version: str, settings: Settings) -> list[dict]:
    """Deployment and Service for the containerized Bento (``serving_image``)."""
    name = f"{settings.model_name.replace('_', '-')}-service"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "fti-platform"}
    probe = {
        "httpGet": {"path": "/readyz", "port": 3000},
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": settings.k8s_namespace,
            "labels": labels,
            "annotations": {"fti/model-version": str(version), "fti/bento": tag},
        },
        "spec": {
            "replicas": settings.serving_replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels, "annotations": {"fti/model-version": str(version)}},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
                    "containers": [
                        {
                            "name": "service",
                            "image": settings.serving_image,
                            "ports": [{"containerPort": 3000, "name": "http"}],
                            # connection strings come from a Secret, never as plain values here
                            "envFrom": [{"secretRef": {"name": settings.k8s_secret}}],
                            "env": [
                                {"name": "FTI_ONLINE_STORE", "value": settings.online_store},
                                {"name": "FTI_SERVING_PORT", "value": "3000"},
                            ],
                            "readinessProbe": probe,
                            "livenessProbe": {
                                **probe,
                                "httpGet": {"path": "/healthz", "port": 3000},
                            },
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": {"cpu": "2", "memory": "2Gi"},
                            },
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": settings.k8s_namespace, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    return [deployment, service]


def validate_manifests(docs: list[dict], k8s_version: str = "1.30.0") -> None:
    """Raise naming the field if a manifest is not valid Kubernetes (kubernetes-validate)."""
    import kubernetes_validate

    for doc in docs:
        kubernetes_validate.validate(doc, k8s_version, strict=True)


def write_manifests(tag: str, version: str, settings: Settings) -> Path:
    """Render, validate and write the manifests of ``tag``; returns the YAML file."""
    import yaml

    docs = render_manifests(tag, version, settings)
    validate_manifests(docs)
    path = settings.serving_dir / "manifests" / f"{tag.replace(':', '-')}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path
