#!/usr/bin/env python3
"""Offline checks of the Grafana dashboards, Grafana provisioning and the
OpenTelemetry Collector configuration (no Grafana, no collector needed).

  python3 scripts/check-dashboards.py                 # check; exit 1 on any problem
  python3 scripts/check-dashboards.py --list-queries  # one JSON line per dashboard query

Checks:
- every observability/grafana/dashboards/*.json parses, has a uid (unique across
  files), a title, schemaVersion >= 36, and panels (rows' nested panels included)
  with ids unique within the dashboard and gridPos rectangles inside the 24
  columns that do not overlap;
- every panel and target names its datasource by uid, and the uid is one of
  those provisioned in datasources.yml; every target has an expr; every panel
  (rows aside) sets a unit;
- every metric an expr names is one the services export: the names are read
  from the Rust sources (the `names` modules of the shared crates and the
  services, and the other `const X: &str` metric names), with the suffixes their type gives on
  the wire (counter `_total`, histogram `_bucket`/`_sum`/`_count`); `up` and
  recording rules `slo:*` are allowed too;
- range selectors use $__rate_interval, $__interval or $__range, and every
  other `$variable` is a templating variable of the dashboard;
- datasources.yml and dashboards.yml parse; uids are unique; exactly one
  datasource is the default; the provider's path is where docker-compose.yml
  mounts observability/grafana/dashboards (the agreed /var/lib/grafana/dashboards
  while compose mounts nothing there), and a home dashboard path set there names
  a dashboard file;
- with promtool on the PATH, every expr (variables replaced as the live check
  does: $__rate_interval/$__interval 1m, $__range 5m, a variable by its
  current value) parses as PromQL (`promtool check rules` on a scratch file);
- observability/otel-collector.yml parses and its pipelines (and service
  extensions) name only receivers, processors, exporters and extensions it defines.

PyYAML is used when importable; otherwise it is installed into a venv under
.cache/obs-venv (OBS_VENV to move it) and the script runs again from there.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "observability" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
COLLECTOR = ROOT / "observability" / "otel-collector.yml"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "observability" / "prometheus" / "prometheus.yml"
# Where the compose file mounts the dashboards (docs: the observability layout).
AGREED_DASHBOARD_PATH = "/var/lib/grafana/dashboards"
GRID_COLUMNS = 24
MIN_SCHEMA_VERSION = 36
RANGE_VARIABLES = {"$__rate_interval", "$__interval", "$__range"}
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s",
                     "__range_ms", "__from", "__to", "__dashboard", "__org", "__user"}
# Series that are not the services' own but may be queried.
EXTRA_METRICS = {"up"}
RECORDING_RULE_PREFIX = "slo:"


def load_yaml_module():
    """PyYAML, from this interpreter or from a venv made for it (re-executing there)."""
    try:
        import yaml  # noqa: PLC0415

        return yaml
    except ImportError:
        pass
    venv = Path(os.environ.get("OBS_VENV", ROOT / ".cache" / "obs-venv")).resolve()
    python = venv / "bin" / "python"
    if os.environ.get("CHECK_DASHBOARDS_IN_VENV"):
        sys.exit(f"error: PyYAML is still missing in {venv}")
    if not python.exists():
        print(f"PyYAML missing: installing it into {venv}", file=sys.stderr)
        if subprocess.run([sys.executable, "-c", "import ensurepip"], capture_output=True).returncode != 0:
            if not shutil.which("apt-get"):
                sys.exit("error: python3 cannot make a venv (no ensurepip) and there is no apt-get")
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "python3-venv"], check=True,
                           stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if subprocess.run([str(python), "-c", "import yaml"], capture_output=True).returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "pyyaml"], check=True)
    os.environ["CHECK_DASHBOARDS_IN_VENV"] = "1"
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
    raise AssertionError("unreachable")


class Report:
    """Collects problems; the script fails when there is any."""

    def __init__(self):
        self.problems = []
        self.notes = []

    def problem(self, where, message):
        self.problems.append(f"{where}: {message}")

    def note(self, message):
        self.notes.append(message)


# --- metric names exported by the services ---------------------------------

CONST_RE = re.compile(r'(?:pub\s+)?const\s+([A-Z][A-Z0-9_]*)\s*:\s*&str\s*=\s*"([a-z_:][a-z0-9_:]*)"\s*;')
# registry.register(NAME, "help", value.clone()) ; the help may span lines.
REGISTER_RE = re.compile(
    r'registry\s*\.\s*register\(\s*((?:[a-z_]*names::)?[A-Z][A-Z0-9_]*)\s*,\s*"(?:[^"\\]|\\.)*"\s*,\s*'
    r'(?:[a-z_]+\.)*([a-z_][a-z0-9_]*)\s*\.clone\(\)', re.S)
# A struct field `name: Type,` (a label struct's field of the same name has no metric type).
FIELD_RE_TEMPLATE = r'(?<![\w.])(?:pub(?:\([a-z]+\))?\s+)?{name}\s*:\s*([A-Za-z][^;=\n]*)'


def metric_kind(type_text):
    if "Histogram" in type_text or "LatencyFamily" in type_text:
        return "histogram"
    if "Counter" in type_text:
        return "counter"
    if "Gauge" in type_text:
        return "gauge"
    return None


def exported_metrics(report):
    """Every series name the services can expose, read from the Rust sources."""
    crates = sorted((ROOT / "shared").glob("*/src")) + [
        ROOT / crate / "src" for crate in ("inventory", "pricing", "order", "identity")]
    sources = [p for src in crates for p in sorted(src.rglob("*.rs"))]
    # Every `pub mod names { ... }` (one per crate or service that registers
    # metrics); a constant's name is unique across them.
    shared_names, names_home = {}, {}
    for path in sources:
        module = re.search(r"pub mod names \{(.*?)\n\}", path.read_text(), re.S)
        for const, value in CONST_RE.findall(module.group(1)) if module else []:
            if const in shared_names:
                report.problem(path.relative_to(ROOT), f"names::{const} is defined twice")
            shared_names[const] = value
            names_home[const] = path
    if not shared_names:
        report.problem("shared", "no `pub mod names { ... }` found")
        return set(EXTRA_METRICS)
    series, registered = set(EXTRA_METRICS), set()
    for path in sources:
        text = path.read_text()
        local = dict(CONST_RE.findall(text))
        for name_ref, value_ident in REGISTER_RE.findall(text):
            const = name_ref.rpartition("names::")[2]
            name = shared_names.get(const) if "names::" in name_ref else local.get(const)
            if name is None:
                report.problem(path.relative_to(ROOT), f"register({name_ref}, ...): name not found")
                continue
            fields = re.findall(FIELD_RE_TEMPLATE.format(name=re.escape(value_ident)), text)
            kind = next((k for k in map(metric_kind, fields) if k), None)
            if kind is None:
                report.problem(path.relative_to(ROOT),
                               f"cannot tell the type of metric {name} (value `{value_ident}`)")
                continue
            registered.add(name)
            series |= wire_names(name, kind)
    for const, name in shared_names.items():
        if name not in registered:
            report.problem(names_home[const].relative_to(ROOT),
                           f"names::{const} ({name}) is never registered")
    return series


def wire_names(name, kind):
    if kind == "counter":
        return {f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


# --- PromQL: the metric names an expression uses ----------------------------

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
                   "and", "or", "unless", "inf", "nan", "atan2", "start", "end"}
GROUPING_RE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENT_RE = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)")


def expr_metrics(expr):
    """Metric names in a PromQL expression (approximate, but strict enough here)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\$\{[^}]*\}|\$\w+", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = GROUPING_RE.sub("", text)
    names = set()
    for match in IDENT_RE.finditer(text):
        word = match.group(1)
        following = text[match.end():].lstrip()
        if word in PROMQL_KEYWORDS or following.startswith("("):
            continue
        names.add(word)
    return names


def expr_problems(expr, variables, exported):
    problems = []
    for name in sorted(expr_metrics(expr)):
        if name.startswith(RECORDING_RULE_PREFIX) or name in exported:
            continue
        problems.append(f"metric `{name}` is not exported by any service")
    for window in re.findall(r"\[([^\]]*)\]", expr):
        if window.strip() not in RANGE_VARIABLES:
            problems.append(f"range [{window}] should be $__rate_interval (or $__interval / $__range)")
    for var in re.findall(r"\$\{(\w+)[^}]*\}|\$(\w+)", expr):
        name = var[0] or var[1]
        if name not in BUILTIN_VARIABLES and name not in variables:
            problems.append(f"${name} is not a templating variable of this dashboard")
    if expr.count("(") != expr.count(")"):
        problems.append("unbalanced parentheses")
    return problems


def substitute(expr, variables):
    """The expression as the live check evaluates it (see the module docs)."""
    fixed = {"__rate_interval": "1m", "__interval": "1m", "__range": "5m"}
    for name, value in variables.items():
        fixed[name] = ".*" if value in ("$__all", "All") else str(value)

    def one(match):
        name = match.group(1) or match.group(2)
        return fixed.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)[^}]*\}|\$(\w+)", one, expr)


def current_values(board):
    return {v.get("name"): (v.get("current") or {}).get("value")
            for v in board.get("templating", {}).get("list", [])}


def check_promql_syntax(yaml, report, boards):
    """Every expr parses, according to promtool (skipped when it is not installed)."""
    promtool = shutil.which("promtool")
    if not promtool:
        why = "promtool not on the PATH: PromQL syntax not checked (apt-get install prometheus)"
        # Under CI=true a check that skips itself is a failure.
        if os.environ.get("CI") == "true":
            report.problem("promtool", why)
        else:
            report.note(why)
        return
    rules, where = [], []
    for path, board in boards:
        variables = current_values(board)
        for panel in all_panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    rules.append({"record": f"dashboard:query{len(rules)}",
                                  "expr": substitute(target["expr"], variables)})
                    where.append(f"{path.name} panel {panel.get('id')} '{panel.get('title')}' "
                                 f"target {target.get('refId')}")
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as scratch:
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, scratch)
    try:
        result = subprocess.run([promtool, "check", "rules", scratch.name], capture_output=True, text=True)
    finally:
        os.unlink(scratch.name)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()
        failures = [line for line in output if re.search(r"rule \d+,", line)]
        for line in failures:
            index = int(re.search(r"rule (\d+),", line).group(1)) - 1
            message = line.split('": ', 1)[-1].strip()
            report.problem(where[index] if index < len(where) else "promtool", message)
        if not failures:
            report.problem("promtool check rules", " / ".join(output) or f"exit {result.returncode}")


# --- dashboards -------------------------------------------------------------

def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def overlapping(a, b):
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def check_datasource_ref(report, where, ds, uids):
    if not isinstance(ds, dict) or not ds.get("uid"):
        report.problem(where, f"datasource must be {{\"type\", \"uid\"}}, found {json.dumps(ds)}")
    elif ds["uid"] not in uids:
        report.problem(where, f"datasource uid `{ds['uid']}` is not provisioned ({', '.join(sorted(uids))})")
    elif ds.get("type") != uids[ds["uid"]]:
        report.problem(where, f"datasource uid `{ds['uid']}` has type {uids[ds['uid']]}, not {ds.get('type')}")


def check_dashboard(report, path, board, uids, exported):
    name = path.name
    for key in ("uid", "title"):
        if not board.get(key):
            report.problem(name, f"missing {key}")
    if not isinstance(board.get("schemaVersion"), int) or board["schemaVersion"] < MIN_SCHEMA_VERSION:
        report.problem(name, f"schemaVersion {board.get('schemaVersion')} < {MIN_SCHEMA_VERSION}")
    variables = {v.get("name"): v for v in board.get("templating", {}).get("list", [])}
    for var in variables.values():
        if var.get("type") == "query":
            check_datasource_ref(report, f"{name} variable ${var.get('name')}", var.get("datasource"), uids)
        if "current" not in var or "value" not in var.get("current", {}):
            report.problem(name, f"variable ${var.get('name')} has no current value (the live check needs one)")
    ids, boxes = {}, []
    for panel in all_panels(board.get("panels", [])):
        title = panel.get("title", "?")
        where = f"{name} panel {panel.get('id')} '{title}'"
        pid = panel.get("id")
        if not isinstance(pid, int):
            report.problem(where, "panel id missing or not an integer")
        elif pid in ids:
            report.problem(where, f"panel id {pid} also used by '{ids[pid]}'")
        else:
            ids[pid] = title
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            report.problem(where, f"gridPos incomplete: {grid}")
        elif grid["x"] < 0 or grid["w"] <= 0 or grid["h"] <= 0 or grid["x"] + grid["w"] > GRID_COLUMNS:
            report.problem(where, f"gridPos outside the {GRID_COLUMNS} columns: {grid}")
        else:
            for other_where, other in boxes:
                if overlapping(grid, other):
                    report.problem(where, f"gridPos {grid} overlaps {other_where}")
            boxes.append((f"panel {pid} '{title}'", grid))
        if panel.get("type") == "row":
            continue
        check_datasource_ref(report, where, panel.get("datasource"), uids)
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            report.problem(where, "no unit (fieldConfig.defaults.unit)")
        targets = panel.get("targets", [])
        if not targets:
            report.problem(where, "no targets")
        for target in targets:
            twhere = f"{where} target {target.get('refId')}"
            check_datasource_ref(report, twhere, target.get("datasource"), uids)
            expr = target.get("expr")
            if not expr:
                report.problem(twhere, "no expr")
                continue
            for problem in expr_problems(expr, variables, exported):
                report.problem(twhere, problem)


def dashboard_files():
    return sorted(DASHBOARDS.glob("*.json"))


def load_dashboards(report):
    boards = []
    for path in dashboard_files():
        try:
            boards.append((path, json.loads(path.read_text())))
        except json.JSONDecodeError as e:
            report.problem(path.name, f"not JSON: {e}")
    if not boards:
        report.problem(DASHBOARDS.relative_to(ROOT), "no dashboards")
    return boards


def check_dashboards(report, boards, uids, exported):
    seen = {}
    for path, board in boards:
        uid = board.get("uid")
        if uid in seen:
            report.problem(path.name, f"uid `{uid}` also used by {seen[uid]}")
        seen[uid] = path.name
        check_dashboard(report, path, board, uids, exported)


# --- provisioning, compose, collector ---------------------------------------

def load_yaml_file(yaml, report, path):
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        report.problem(path.relative_to(ROOT), "missing")
    except yaml.YAMLError as e:
        report.problem(path.relative_to(ROOT), f"not YAML: {e}")
    return None


def check_datasources(yaml, report):
    """The provisioned datasources, uid -> type."""
    where = DATASOURCES.relative_to(ROOT)
    doc = load_yaml_file(yaml, report, DATASOURCES) or {}
    uids = {}
    defaults = []
    for ds in doc.get("datasources") or []:
        uid = ds.get("uid")
        if not uid or not ds.get("type") or not ds.get("url"):
            report.problem(where, f"datasource {ds.get('name')} needs uid, type and url")
            continue
        if uid in uids:
            report.problem(where, f"uid `{uid}` twice")
        uids[uid] = ds["type"]
        if ds.get("isDefault"):
            defaults.append(uid)
    if len(defaults) != 1:
        report.problem(where, f"exactly one default datasource expected, found {defaults}")
    check_time_interval(yaml, report, doc)
    return uids


def check_time_interval(yaml, report, doc):
    """Grafana's timeInterval should be Prometheus's scrape interval (when that file exists)."""
    if not PROMETHEUS.exists():
        return
    prom = load_yaml_file(yaml, report, PROMETHEUS) or {}
    scrape = (prom.get("global") or {}).get("scrape_interval", "1m")
    for ds in doc.get("datasources") or []:
        interval = (ds.get("jsonData") or {}).get("timeInterval")
        if ds.get("type") == "prometheus" and interval and interval != scrape:
            report.problem(DATASOURCES.relative_to(ROOT),
                           f"timeInterval {interval} differs from the scrape interval {scrape} in prometheus.yml")


def compose_mounts(yaml, report):
    """(host, container) volume pairs and environment of every compose service."""
    doc = load_yaml_file(yaml, report, COMPOSE) or {}
    mounts, env = [], {}
    for service in (doc.get("services") or {}).values():
        for volume in service.get("volumes") or []:
            if isinstance(volume, str) and ":" in volume:
                host, container = volume.split(":")[:2]
                mounts.append((host.rstrip("/"), container.rstrip("/")))
            elif isinstance(volume, dict) and volume.get("source"):
                mounts.append((volume["source"].rstrip("/"), volume.get("target", "").rstrip("/")))
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(e.split("=", 1) for e in environment if "=" in e)
        env.update({k: str(v) for k, v in environment.items()})
    return mounts, env


def check_providers(yaml, report):
    where = PROVIDERS.relative_to(ROOT)
    doc = load_yaml_file(yaml, report, PROVIDERS) or {}
    providers = doc.get("providers") or []
    if not providers:
        report.problem(where, "no providers")
        return
    mounts, env = compose_mounts(yaml, report)
    mounted = [c for h, c in mounts if h in ("./observability/grafana/dashboards", "observability/grafana/dashboards")]
    expected = mounted[0] if mounted else AGREED_DASHBOARD_PATH
    if not mounted:
        report.note(f"docker-compose.yml mounts no ./observability/grafana/dashboards yet: "
                    f"checked against {AGREED_DASHBOARD_PATH}")
    for provider in providers:
        path = (provider.get("options") or {}).get("path")
        if provider.get("type", "file") != "file" or not path:
            report.problem(where, f"provider {provider.get('name')}: a file provider with options.path expected")
        elif path.rstrip("/") != expected:
            report.problem(where, f"provider path {path} is not where compose mounts the dashboards ({expected})")
    provisioning = [c for h, c in mounts if h.endswith("observability/grafana/provisioning")]
    if provisioning and provisioning[0] != "/etc/grafana/provisioning":
        report.problem("docker-compose.yml", f"provisioning mounted at {provisioning[0]}, "
                       "Grafana reads /etc/grafana/provisioning")
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home is not None:
        file = Path(home)
        if str(file.parent) != expected or not (DASHBOARDS / file.name).exists():
            report.problem("docker-compose.yml", f"home dashboard {home} is not a dashboard file under {expected}")


def check_collector(yaml, report):
    where = COLLECTOR.relative_to(ROOT)
    doc = load_yaml_file(yaml, report, COLLECTOR)
    if not isinstance(doc, dict):
        return
    service = doc.get("service") or {}
    for ext in service.get("extensions") or []:
        if ext not in (doc.get("extensions") or {}):
            report.problem(where, f"service.extensions names undefined extension `{ext}`")
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        report.problem(where, "no service.pipelines")
    for name, pipeline in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            names = (pipeline or {}).get(section) or []
            if section != "processors" and not names:
                report.problem(where, f"pipeline {name} has no {section}")
            for component in names:
                if component not in (doc.get(section) or {}):
                    report.problem(where, f"pipeline {name} names undefined {section[:-1]} `{component}`")


# --- main -------------------------------------------------------------------

def list_queries(boards):
    for path, board in boards:
        variables = current_values(board)
        for panel in all_panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    print(json.dumps({"dashboard": board.get("uid"), "file": path.name,
                                      "panel": panel.get("title"), "refId": target.get("refId"),
                                      "expr": target["expr"], "variables": variables}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list-queries", action="store_true",
                        help="print every dashboard query as a JSON line and exit")
    args = parser.parse_args()
    report = Report()
    boards = load_dashboards(report)
    if args.list_queries:
        list_queries(boards)
        return 1 if report.problems else 0
    yaml = load_yaml_module()
    exported = exported_metrics(report)
    uids = check_datasources(yaml, report)
    check_dashboards(report, boards, uids, exported)
    check_promql_syntax(yaml, report, boards)
    check_providers(yaml, report)
    check_collector(yaml, report)
    for note in report.notes:
        print(f"note: {note}")
    queries = sum(1 for _, b in boards for p in all_panels(b.get("panels", [])) for t in p.get("targets", []))
    if report.problems:
        for problem in report.problems:
            print(f"FAIL {problem}", file=sys.stderr)
        print(f"check-dashboards: {len(report.problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check-dashboards: ok ({len(boards)} dashboards, {queries} queries, "
          f"{len(exported)} exported series names, datasources {sorted(uids)}, collector pipelines valid)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # --list-queries piped into head: the reader had enough.
        sys.stderr.close()
        sys.exit(0)
