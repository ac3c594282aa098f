"""Splits Kubernetes manifests into one file per object for the validators, by kind:
OUT/core/<file>-<n>-<kind>-<name>.yaml for kubernetes-validate, OUT/keda/<Kind>-….yaml for
check-jsonschema. Then checks what no schema can: every ConfigMap, Secret (and key),
TriggerAuthentication and Deployment an object names is defined in these files, and the
worker ScaledObject's queue-length target equals the ConfigMap's WORKER_PREFETCH.
Usage: split-manifests.py OUT FILE…  (exit 1 with a message per problem)."""

import os
import sys

import yaml  # PyYAML, a dependency of kubernetes-validate in the same venv

KEDA = {"ScaledObject", "TriggerAuthentication"}


def main(out, paths):
    os.makedirs(os.path.join(out, "core"), exist_ok=True)
    os.makedirs(os.path.join(out, "keda"), exist_ok=True)
    objects, problems = [], []
    for path in paths:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        for n, doc in enumerate(docs, 1):
            kind = doc.get("kind", "?")
            name = doc.get("metadata", {}).get("name", "?")
            where = f"{path} #{n} ({kind} {name})"
            base = f"{os.path.basename(path).removesuffix('.yaml')}-{n}-{kind}-{name}.yaml"
            if kind in KEDA:
                if doc.get("apiVersion") != "keda.sh/v1alpha1":
                    problems.append(f"{where}: apiVersion must be keda.sh/v1alpha1")
                target = os.path.join(out, "keda", f"{kind}-{base}")
            elif doc.get("apiVersion", "").startswith("keda.sh/"):
                problems.append(f"{where}: no schema for this KEDA kind")
                continue
            else:
                target = os.path.join(out, "core", base)
            with open(target, "w") as f:
                yaml.safe_dump(doc, f)
            objects.append((where, doc))
    problems += check_references(objects)
    for p in problems:
        print(f"manifests: {p}", file=sys.stderr)
    return 1 if problems else 0


def check_references(objects):
    defined = {}
    for _, doc in objects:
        data = {**doc.get("data", {}), **doc.get("stringData", {})}
        defined[(doc.get("kind"), doc.get("metadata", {}).get("name"))] = data
    problems = []

    def need(where, kind, name, key=None):
        if (kind, name) not in defined:
            problems.append(f"{where}: names {kind} {name!r}, which deploy/ does not define")
        elif key is not None and key not in defined[(kind, name)]:
            problems.append(f"{where}: {kind} {name!r} has no key {key!r}")

    for where, doc in objects:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    need(where, "ConfigMap", src["configMapRef"]["name"])
                if "secretRef" in src:
                    need(where, "Secret", src["secretRef"]["name"])
            ports = {p.get("name") for p in c.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in ports:
                    problems.append(f"{where}: {probe} uses port {port!r}, not a named container port")
        # Missing or mistyped fields are left to the schemas (the validators run next).
        if doc.get("kind") == "ScaledObject":
            target = spec.get("scaleTargetRef") or {}
            if "name" in target:
                need(where, "Deployment", target["name"])
            for trigger in spec.get("triggers") or []:
                ref = trigger.get("authenticationRef") or {}
                if "name" in ref:
                    need(where, "TriggerAuthentication", ref["name"])
                value = (trigger.get("metadata") or {}).get("value")
                config = defined.get(("ConfigMap", "roster-config"), {})
                prefetch = str(config.get("WORKER_PREFETCH", "128"))
                if trigger.get("type") == "rabbitmq" and isinstance(value, str) and value != prefetch:
                    problems.append(f"{where}: target {value!r} is not WORKER_PREFETCH ({prefetch!r})")
        if doc.get("kind") == "TriggerAuthentication":
            for ref in spec.get("secretTargetRef") or []:
                if "name" in ref and "key" in ref:
                    need(where, "Secret", ref["name"], ref["key"])
    return problems


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
