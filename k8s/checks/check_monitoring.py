"""Checks k8s/monitoring: the PrometheusRule against the Prometheus Operator's schema for it (kubernetes-validate
has none and only warns), every alert with a severity, a summary and a runbook section that exists, and every metric
an alert names exported by some service (its OTLP name, as the collector translates it, found in the sources), every
label it names put on some metric (an attribute of the sources, dots as underscores, or one Prometheus adds).

The Grafana dashboards (k8s/monitoring/dashboards/*.json, each generated as a ConfigMap by the kustomization): a
unique uid, a title, panels with unique ids on a 24-column grid without overlaps, every query with a refId and an
expression whose metrics some service exports, whose labels some metric carries and whose `$variables` the
dashboard defines; and every metric the
services export is charted by some dashboard.

Usage: check_monitoring.py [--self-test]. Exits non-zero with the problems found."""
import json
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
    "clamp_min", "clamp_max", "time", "vector", "scalar", "topk", "bottomk", "le", "label_values",
}
PANEL_TYPES = {"stat", "gauge", "timeseries", "bargauge", "table", "text", "row", "heatmap", "piechart"}
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}
BUILTIN_LABELS = {"le", "job", "instance", "__name__"}


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


def exported_labels():
    """Prometheus names of the attributes the sources put on metrics (`KeyValue::new("a.b", ...)` becomes `a_b`), and
    the labels Prometheus adds itself."""
    sources = "".join(p.read_text() for d in ("libs", "services") for p in (ROOT / d).rglob("*.rs"))
    consts = dict(re.findall(r'const ([A-Z_]+): &str = "([a-z0-9._]+)"', sources))
    names = re.findall(r'KeyValue::new\(\s*(?:"([a-z0-9_.]+)"|(?:[a-z_]+::)*([A-Z_]+)\b)', sources)
    return {(literal or consts.get(const, "")).replace(".", "_") for literal, const in names} - {""} | BUILTIN_LABELS


def labels_named(expr):
    """The label names of a PromQL expression: in selectors' braces and in by/without/on/ignoring/group lists."""
    expr = re.sub(r'"[^"]*"', '""', expr)
    names = set(re.findall(r'[{,]\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)', expr))
    for group in re.findall(r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)', expr):
        names |= {w.strip() for w in group.split(",") if w.strip()}
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
            for label in sorted(labels_named(rule["expr"]) - LABELS):
                out.append(f"{name}: label {label} is put on no metric")
            if "alert" in rule:
                if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
                    out.append(f"{name}: severity must be warning or critical")
                if not rule.get("annotations", {}).get("summary"):
                    out.append(f"{name}: no summary")
                runbook = rule.get("annotations", {}).get("runbook", "")
                if not runbook.startswith("docs/operations.md#") or runbook[len("docs/operations.md"):] not in anchors:
                    out.append(f"{name}: runbook {runbook!r} is no section of docs/operations.md")
    return out


def dashboard_problems(name, dash, exported):
    """What is wrong with one dashboard (its parsed JSON), and the metrics it charts."""
    out, charted = [], set()
    for key in ("uid", "title"):
        if not isinstance(dash.get(key), str) or not dash[key]:
            out.append(f"{name}: no {key}")
    if len(dash.get("uid") or "") > 40:
        out.append(f"{name}: uid longer than 40 characters")
    if not isinstance(dash.get("schemaVersion"), int):
        out.append(f"{name}: no schemaVersion")
    variables = {v.get("name") for v in (dash.get("templating") or {}).get("list", [])} | BUILTIN_VARIABLES
    queries = []
    for v in (dash.get("templating") or {}).get("list", []):
        query = v.get("query")
        if v.get("type") == "query":
            queries.append((f"variable {v.get('name')}", query.get("query") if isinstance(query, dict) else query))
    panels = dash.get("panels")
    if not isinstance(panels, list) or not panels:
        out.append(f"{name}: no panels")
        panels = []
    ids, cells = set(), {}
    for panel in panels:
        pid = panel.get("id")
        where = f"{name}: panel {pid} ({panel.get('title', '?')})"
        if pid in ids:
            out.append(f"{where}: id used twice")
        ids.add(pid)
        if panel.get("type") not in PANEL_TYPES:
            out.append(f"{where}: unknown type {panel.get('type')!r}")
        if not panel.get("title"):
            out.append(f"{where}: no title")
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in "xywh") or grid["w"] < 1 or grid["h"] < 1:
            out.append(f"{where}: no gridPos x, y, w, h")
        elif grid["x"] < 0 or grid["x"] + grid["w"] > 24:
            out.append(f"{where}: wider than the 24-column grid")
        else:
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    if (x, y) in cells:
                        out.append(f"{where}: overlaps panel {cells[x, y]}")
                        break
                    cells[x, y] = pid
                else:
                    continue
                break
        targets = panel.get("targets") or []
        if panel.get("type") not in ("text", "row") and not targets:
            out.append(f"{where}: no queries")
        refs = [t.get("refId") for t in targets]
        if None in refs or len(set(refs)) != len(refs):
            out.append(f"{where}: every query needs its own refId")
        queries += [(where, t.get("expr")) for t in targets]
    for where, expr in queries:
        if not isinstance(expr, str) or not expr.strip():
            out.append(f"{where}: a query has no expression")
            continue
        if expr.count("(") != expr.count(")"):
            out.append(f"{where}: unbalanced parentheses")
        for var in sorted(set(re.findall(r'\$\{?([A-Za-z_][A-Za-z0-9_]*)', expr)) - variables):
            out.append(f"{where}: ${var} is no variable of the dashboard")
        expr = re.sub(r'\$\{?[A-Za-z_][A-Za-z0-9_]*\}?', "", expr)
        for label in sorted(set(re.findall(r'label_values\([^,)]+,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)', expr)) | labels_named(expr)):
            if label not in LABELS:
                out.append(f"{where}: label {label} is put on no metric")
        expr = re.sub(r'label_values\(([^,)]+),[^)]*\)', r"\1", expr)  # a variable's metric, not its label
        metrics = metrics_named(expr)
        for metric in sorted(metrics - exported):
            out.append(f"{where}: {metric} is exported by no service")
        charted |= metrics
    return out, charted


def dashboards_problems(files, exported, listed):
    """Every dashboard file checked, each listed by the kustomization, uids unique, every exported metric charted."""
    out, charted, uids = [], set(), {}
    for path in files:
        try:
            dash = json.loads(path.read_text())
        except ValueError as e:
            out.append(f"{path.name}: not JSON ({e})")
            continue
        found, metrics = dashboard_problems(path.name, dash, exported)
        out += found
        charted |= metrics
        if dash.get("uid") in uids:
            out.append(f"{path.name}: uid {dash['uid']} is also {uids[dash['uid']]}'s")
        uids[dash.get("uid")] = path.name
        if listed is not None and f"dashboards/{path.name}" not in listed:
            out.append(f"{path.name}: not generated by k8s/monitoring/kustomization.yaml")
    families = {}
    for metric in exported:
        families.setdefault(re.sub(r'_(bucket|sum|count)$', "", metric) if metric.endswith(("_bucket", "_sum", "_count")) else metric, set()).add(metric)
    for family, members in sorted(families.items()):
        if not members & charted:
            out.append(f"{family} is charted by no dashboard")
    return out


LABELS = exported_labels()


def main():
    guide = (ROOT / "docs/operations.md").read_text()
    exported = exported_metrics()
    fixtures = ROOT / "k8s/checks/fixtures"
    if "--self-test" in sys.argv:
        broken = yaml.safe_load_all((fixtures / "broken-rules.yaml").read_text())
        found = [p for doc in broken for p in problems(doc, exported, guide)]
        found += dashboards_problems([fixtures / "broken-dashboard.json"] * 2, exported, None)
        header = [fixtures / "broken-dashboard-header.json", fixtures / "broken-dashboard-syntax.json"]
        found += dashboards_problems(header, exported, set())
        expected = ["no_such_metric", "severity", "runbook", "schema", "id used twice", "overlaps panel",
                    "every query needs its own refId", "$nowhere is no variable", "wider than the 24-column grid",
                    "unknown type", "no queries", "is also broken-dashboard.json's", "charted by no dashboard",
                    "no title", "no schemaVersion", "uid longer than 40", "unbalanced parentheses",
                    "a query has no expression", "not JSON", "label rapport_no_such_label is put on no metric",
                    "not generated by k8s/monitoring/kustomization.yaml"]
        missing = [e for e in expected if not any(e in p for p in found)]
        if missing:
            print(f"the broken fixtures passed checks they should fail: {missing} (found {found})")
            return 1
        print(f"check_monitoring self-test: {len(expected)} expected problems reported")
        return 0
    monitoring = ROOT / "k8s/monitoring"
    found = problems(yaml.safe_load((monitoring / "prometheus-rules.yaml").read_text()), exported, guide)
    listed = {f for gen in yaml.safe_load((monitoring / "kustomization.yaml").read_text()).get("configMapGenerator", [])
              for f in gen.get("files", [])}
    found += dashboards_problems(sorted((monitoring / "dashboards").glob("*.json")), exported, listed)
    for p in found:
        print(p)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
