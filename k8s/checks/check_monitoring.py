"""Checks k8s/monitoring: the PrometheusRule against the Prometheus Operator's schema for it (kubernetes-validate
has none and only warns), every alert with a severity, a summary and a runbook section that exists, and every metric
an alert names exported by some service (its OTLP name, as the collector translates it, found in the sources).

Usage: check_monitoring.py [--self-test]. Exits non-zero with the problems found."""
import pathlib
import re
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]

DURATION = r'^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
# The CRD's openAPIV3Schema (monitoring.coreos.com/v1 PrometheusRule), closed: unknown fields are errors.
SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": DURATION},
                            "labels": STRINGS,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": "string"},
                                        "for": {"type": "string", "pattern": DURATION},
                                        "keep_firing_for": {"type": "string", "pattern": DURATION},
                                        "labels": STRINGS,
                                        "annotations": STRINGS,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}

PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "sum", "max", "min", "avg", "count", "rate", "increase", "deriv", "histogram_quantile", "irate", "abs",
    "clamp_min", "clamp_max", "time", "vector", "scalar", "topk", "bottomk", "le",
}


def exported_metrics():
    """Prometheus names of the metrics the sources build: `<kind>_gauge|counter|histogram("name")`, the unit `s`
    adding `_seconds`, counters `_total`, histograms `_bucket`, `_sum`, `_count`."""
    names = set()
    sources = "".join(p.read_text() for d in ("libs", "services") for p in (ROOT / d).rglob("*.rs"))
    consts = dict(re.findall(r'const ([A-Z_]+): &str = "([a-z0-9._]+)"', sources))
    for kind, name, rest in re.findall(r'\.(?:[fiu]64)_(gauge|counter|histogram)\(\s*("[a-z0-9._]+"|[A-Z_]+)\)(.*?)\.build\(\)', sources, re.S):
        name = name.strip('"') if name.startswith('"') else consts.get(name, name)
        base = name.replace(".", "_")
        if '.with_unit("s")' in rest:
            base += "_seconds"
        if kind == "counter":
            names.add(base + "_total")
        elif kind == "histogram":
            names.update(base + s for s in ("_bucket", "_sum", "_count"))
        else:
            names.add(base)
    return names


def metrics_named(expr):
    """The metric names of a PromQL expression: identifiers not in braces' label part, not functions or keywords."""
    expr = re.sub(r'\{[^}]*\}', "", expr)
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r'\[[^\]]*\]', "", expr)
    expr = re.sub(r'\b(by|without|on|ignoring)\s*\([^)]*\)', "", expr)
    return {w for w in re.findall(r'[a-zA-Z_:][a-zA-Z0-9_:]*', expr) if w not in PROMQL_WORDS}


def problems(doc, exported, guide):
    out = [f"schema: {e.message} at {'/'.join(map(str, e.path))}" for e in
           jsonschema.Draft202012Validator(SCHEMA).iter_errors(doc)]
    if out:
        return out
    anchors = {"#" + re.sub(r'[^a-z0-9 -]', "", h.lower()).replace(" ", "-")
               for h in re.findall(r'^#+ (.+)$', guide, re.M)}
    for group in doc["spec"]["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record") or "?"
            if rule["expr"].count("(") != rule["expr"].count(")"):
                out.append(f"{name}: unbalanced parentheses")
            for metric in sorted(metrics_named(rule["expr"]) - exported):
                out.append(f"{name}: {metric} is exported by no service")
            if "alert" in rule:
                if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
                    out.append(f"{name}: severity must be warning or critical")
                if not rule.get("annotations", {}).get("summary"):
                    out.append(f"{name}: no summary")
                runbook = rule.get("annotations", {}).get("runbook", "")
                if not runbook.startswith("docs/operations.md#") or runbook[len("docs/operations.md"):] not in anchors:
                    out.append(f"{name}: runbook {runbook!r} is no section of docs/operations.md")
    return out


def main():
    guide = (ROOT / "docs/operations.md").read_text()
    exported = exported_metrics()
    if "--self-test" in sys.argv:
        broken = yaml.safe_load_all((ROOT / "k8s/checks/fixtures/broken-rules.yaml").read_text())
        found = [p for doc in broken for p in problems(doc, exported, guide)]
        expected = ["no_such_metric", "severity", "runbook", "schema"]
        missing = [e for e in expected if not any(e in p for p in found)]
        if missing:
            print(f"the broken fixture passed checks it should fail: {missing} (found {found})")
            return 1
        return 0
    found = problems(yaml.safe_load((ROOT / "k8s/monitoring/prometheus-rules.yaml").read_text()), exported, guide)
    for p in found:
        print(p)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
