#!/usr/bin/env python3
"""Checks every pod a rendered manifest stream defines (`kubectl kustomize DIR | check_pods.py`).

Each pod must meet the Kubernetes "restricted" Pod Security Standard, give every container CPU and memory limits and
readiness and liveness probes (gRPC probes for a container serving a port named `grpc`), and allow a termination
grace longer than the service's drain (RAPPORT_DRAIN_DELAY_MS + RAPPORT_DRAIN_DEADLINE_MS, defaults 5 s + 20 s).
Every container running a Rapport binary (image `rapport-*`), its migrating init container too, logs JSON
(RAPPORT_LOG_FORMAT=json) so the cluster's log pipeline can parse every line.
Exit status 1 and one line per problem when any pod falls short.

`check_pods.py --self-test` runs the checks on the fixtures beside it: `fixtures/good.yaml` must pass and each
`# expect: <text>` line of `fixtures/broken.yaml` must be among the problems found there.
"""
import pathlib
import sys

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
DEFAULT_DRAIN_MS = {"RAPPORT_DRAIN_DELAY_MS": 5000, "RAPPORT_DRAIN_DEADLINE_MS": 20000}
DEFAULT_GRACE_S = 30
ALLOWED_CAPABILITIES = {"NET_BIND_SERVICE"}
RESTRICTED_VOLUMES = {"hostPath"}


def pods(docs):
    """(kind/name, pod spec) of every workload in `docs`."""
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name", "?")
        spec = doc.get("spec") or {}
        if kind == "CronJob":
            spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        elif kind == "Pod":
            yield f"{kind}/{name}", spec
            continue
        elif kind not in WORKLOADS:
            continue
        yield f"{kind}/{name}", (spec.get("template") or {}).get("spec") or {}


def env_value(container, key):
    for e in container.get("env") or []:
        if e.get("name") == key and "value" in e:
            return e["value"]
    return None


def problems(name, pod):
    out = []
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"{name}: {key} is not allowed")
    for volume in pod.get("volumes") or []:
        for kind in RESTRICTED_VOLUMES & volume.keys():
            out.append(f"{name}: volume {volume.get('name')} is a {kind}")
    containers = [(False, c) for c in pod.get("containers") or []]
    containers += [(True, c) for c in pod.get("initContainers") or []]
    if not containers:
        out.append(f"{name}: no containers")
    grace = pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
    for init, c in containers:
        where = f"{name}/{c.get('name', '?')}"
        csc = c.get("securityContext") or {}
        if csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            out.append(f"{where}: runAsNonRoot must be true")
        if csc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{where}: runAsUser must not be 0")
        if csc.get("privileged"):
            out.append(f"{where}: privileged is not allowed")
        if csc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}: allowPrivilegeEscalation must be false")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where}: capabilities must drop ALL")
        for cap in sorted(set(caps.get("add") or []) - ALLOWED_CAPABILITIES):
            out.append(f"{where}: capability {cap} is not allowed")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        limits = (c.get("resources") or {}).get("limits") or {}
        for resource in ("cpu", "memory"):
            if resource not in limits:
                out.append(f"{where}: no {resource} limit")
        # A rapport binary: its image, or what only a rapport binary does here (a gRPC port, the migrate entry point),
        # so an overlay that renames the image does not turn the check off.
        image = (c.get("image") or "").rsplit("/", 1)[-1]
        rapport = image.startswith("rapport-") or c.get("args") == ["migrate"] or any(
            p.get("name") == "grpc" for p in c.get("ports") or [])
        if rapport and (env_value(c, "RAPPORT_LOG_FORMAT") or "").lower() != "json":
            out.append(f"{where}: a rapport binary must log JSON (RAPPORT_LOG_FORMAT=json)")
        if init:
            continue
        serves_grpc = any(p.get("name") == "grpc" for p in c.get("ports") or [])
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                out.append(f"{where}: no {probe}")
            elif serves_grpc and "grpc" not in c[probe]:
                out.append(f"{where}: {probe} must be a gRPC probe")
        if serves_grpc:
            try:
                drain_ms = sum(int(env_value(c, k) or d) for k, d in DEFAULT_DRAIN_MS.items())
            except ValueError:
                out.append(f"{where}: drain settings are not numbers")
                continue
            if grace * 1000 <= drain_ms:
                out.append(f"{where}: termination grace {grace}s is not longer than its drain {drain_ms / 1000:g}s")
    return out


def check(text):
    found = []
    count = 0
    for name, pod in pods(yaml.safe_load_all(text)):
        count += 1
        found += problems(name, pod)
    return count, found


def self_test():
    here = pathlib.Path(__file__).parent / "fixtures"
    count, found = check((here / "good.yaml").read_text())
    assert count > 0, "good.yaml defines no pod"
    assert not found, f"good.yaml: {found}"
    broken = (here / "broken.yaml").read_text()
    expected = [line.split("# expect:", 1)[1].strip() for line in broken.splitlines() if "# expect:" in line]
    assert expected, "broken.yaml expects nothing"
    _, found = check(broken)
    missing = [e for e in expected if not any(e in f for f in found)]
    assert not missing, f"broken.yaml: not reported {missing}; reported {found}"
    print(f"check_pods self-test: good fixture passes, {len(expected)} expected problems reported")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    count, found = check(sys.stdin.read())
    for line in found:
        print(line, file=sys.stderr)
    if count == 0:
        print("no pods in the input", file=sys.stderr)
        return 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
