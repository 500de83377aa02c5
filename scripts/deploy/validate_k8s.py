#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests (one multi-document YAML file).

Every built-in resource is checked against the Kubernetes OpenAPI schemas with
kubernetes-validate in strict mode (unknown fields are errors). KEDA ScaledObjects have no
schema there, so they are checked here: the fields KEDA needs, a rabbitmq trigger on an
Emporium queue, and a target Deployment that exists. Exits 1 on any problem.
"""
import sys

import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.32.0"


def check_scaled_object(doc, deployments):
    problems = []
    name = doc.get("metadata", {}).get("name", "?")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return [f"ScaledObject {name}: no spec"]
    target = (spec.get("scaleTargetRef") or {}).get("name")
    if target not in deployments:
        problems.append(f"ScaledObject {name}: scaleTargetRef {target!r} is not a Deployment here")
    for key in ("minReplicaCount", "maxReplicaCount"):
        if not isinstance(spec.get(key), int) or spec[key] < 0:
            problems.append(f"ScaledObject {name}: {key} must be a non-negative integer")
    if isinstance(spec.get("minReplicaCount"), int) and isinstance(spec.get("maxReplicaCount"), int) and spec["minReplicaCount"] > spec["maxReplicaCount"]:
        problems.append(f"ScaledObject {name}: minReplicaCount exceeds maxReplicaCount")
    triggers = spec.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        return problems + [f"ScaledObject {name}: needs triggers"]
    for trigger in triggers:
        metadata = trigger.get("metadata") or {}
        if trigger.get("type") != "rabbitmq":
            problems.append(f"ScaledObject {name}: trigger type must be rabbitmq")
        if not str(metadata.get("queueName", "")).startswith("emporium."):
            problems.append(f"ScaledObject {name}: queueName must be an Emporium queue (emporium.<role>)")
        if metadata.get("mode") not in ("QueueLength", "MessageRate"):
            problems.append(f"ScaledObject {name}: mode must be QueueLength or MessageRate")
        if not str(metadata.get("value", "")).isdigit():
            problems.append(f"ScaledObject {name}: value must be a number in a string")
        if not (metadata.get("hostFromEnv") or trigger.get("authenticationRef")):
            problems.append(f"ScaledObject {name}: needs hostFromEnv or an authenticationRef")
    return problems


def main(path):
    with open(path) as handle:
        docs = [doc for doc in yaml.safe_load_all(handle) if doc]
    if not docs:
        print(f"validate_k8s: {path} holds no manifests", file=sys.stderr)
        return 1
    deployments = {d["metadata"]["name"] for d in docs if d.get("kind") == "Deployment" and "metadata" in d}
    problems = []
    for doc in docs:
        kind, name = doc.get("kind", "?"), doc.get("metadata", {}).get("name", "?")
        if kind == "ScaledObject":
            problems += check_scaled_object(doc, deployments)
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{kind} {name}: {'.'.join(str(p) for p in error.path)}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{kind} {name}: no schema for {doc.get('apiVersion')} {kind}")
    for problem in problems:
        print(f"validate_k8s: {problem}", file=sys.stderr)
    if not problems:
        print(f"validate_k8s: {len(docs)} manifests valid (Kubernetes {KUBERNETES_VERSION}, strict)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
