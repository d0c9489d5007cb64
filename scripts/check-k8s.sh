#!/usr/bin/env bash
# Checks the Kubernetes manifests (k8s/) without a cluster:
#
#   1. renders every overlay in k8s/overlays/ with kustomize (`kubectl kustomize`),
#      from a copy of k8s/ without the prod overlay's secret files: prod (and prod-*)
#      must FAIL to render without them; then with throwaway ones made by
#      k8s/overlays/prod/secrets/generate.sh in the copy (real secrets are never read)
#   2. checks what the shop's manifests promise (namespace, probes, resources,
#      security contexts, service accounts, tags; prod: replicas, HPA, PDB, spread,
#      Ingress, chaos off, tokens required, the one Secret exactly the generated
#      files' values, no demo value of overlays/dev/demo-secrets.yaml nor a placeholder
#      anywhere, IDENTITY_ALLOW_PUBLISHED_KEYS unset, the gateway trusting a proxy range
#      (GATEWAY_TRUSTED_PROXIES); dev: chaos on, access control off, published demo
#      key allowed;
#      everywhere: every Secret key read exists, a trusted issuer is identity's
#      IDENTITY_ISSUER and reachable through the NetworkPolicies, order's client
#      secret is its client's in IDENTITY_CLIENTS; the events broker: a JetStream
#      StatefulSet probed on /healthz?js-enabled-only=true, its client and headless
#      Services, NATS_URL on the services that publish, NetworkPolicies letting only
#      them reach 4222, the servers each other on 6222, only the monitoring
#      namespace 8222; prod: three servers clustered by routes over the headless
#      Service, streams with three replicas, a PDB, anti-affinity)
#      the replicas order calls: INVENTORY_URL and PRICING_URL name headless Services
#      that select the dependency's pods on its port, without publishNotReadyAddresses
#      (readiness gates discovery), LOAD_BALANCER and DISCOVERY_REFRESH_MS in range)
#      An overlay prod-* (prod-monitoring) is prod plus something: prod's rules apply.
#      Monitoring (components/monitoring, in overlays/prod-monitoring): a ServiceMonitor
#      per service (port http, /metrics, 15 s, jobLabel app.kubernetes.io/name) that
#      selects its Service, a NetworkPolicy letting Prometheus (namespace monitoring)
#      reach each service's port, the PrometheusRule's groups and rules, the dashboards'
#      ConfigMaps (label grafana_dashboard "1", JSON); the generated files
#      (scripts/gen-k8s-monitoring.py: the PrometheusRule, the dashboards' kustomization)
#      must be up to date
#   3. validates every object against the Kubernetes OpenAPI schemas, strictly
#      (unknown fields are errors), offline: kubernetes-validate, for the oldest
#      version the manifests need (1.30: preStop sleep) and the newest it knows.
#      It has no schemas of the Prometheus Operator's kinds (monitoring.coreos.com):
#      those are checked in step 2 (known fields only, the shapes the operator reads)
#   4. runs checkov's Kubernetes policies, offline (--skip-download); every skipped
#      check must carry a reason and be listed in k8s/POLICY-EXCEPTIONS.md
#
# Quiet on success: one summary line. Exits non-zero on any failure.
# Tools: kubectl from the machine (or `kustomize` on PATH); kubernetes-validate and
# checkov from PyPI, pinned, in a virtualenv under K8S_TOOLS_DIR (default
# ~/.cache/resilient-shop/k8s-tools), installed on first use (about a minute).
# With no kustomize 5 to be had (Debian's kubernetes-client 1.20 bundles v2, too
# old for these kustomizations), the check is skipped with a message, or fails if
# K8S_CHECK_REQUIRED=1.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
tools_dir=${K8S_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/resilient-shop/k8s-tools}
requirements=("kubernetes-validate==1.37.0" "checkov==3.3.30")
# Oldest Kubernetes the manifests target (preStop sleep is 1.30+) and the newest
# schema set the pinned kubernetes-validate bundles.
k8s_versions=(1.30.0 1.37.0)
namespace=resilient-shop

fail() { echo "k8s check: FAILED: $*" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- a kustomize renderer -------------------------------------------------------
# kustomize 5 (kubectl 1.27+) is needed: `labels` with includeTemplates, `replicas`,
# regex patch targets. The choice goes by version, so that a broken kustomization
# fails the check instead of looking like a missing tool.
kustomize_major() { sed -nE 's/.*[Kk]ustomize[^0-9]*v?([0-9]+)\..*/\1/p; s/^v([0-9]+)\..*/\1/p' | head -n 1; }
renderer=()
found=""
pick_renderer() {
  local major
  if command -v kubectl >/dev/null 2>&1; then
    major=$(kubectl version --client 2>/dev/null | kustomize_major)
    found="kubectl with kustomize v${major:-?}"
    [ "${major:-0}" -ge 5 ] && { renderer=(kubectl kustomize); return; }
  fi
  if command -v kustomize >/dev/null 2>&1; then
    major=$(kustomize version 2>/dev/null | kustomize_major)
    found="${found:+$found, }kustomize v${major:-?}"
    [ "${major:-0}" -ge 5 ] && { renderer=(kustomize build); return; }
  fi
  return 0
}
pick_renderer
if [ ${#renderer[@]} -eq 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # Debian itself has only kubernetes-client 1.20, whose kustomize (v2) cannot read
  # these kustomizations; a machine with an apt repository that serves a current
  # `kubectl` gets it from there.
  if apt-cache policy kubectl 2>/dev/null | grep -qE '^ +[0-9]+ (https?|file):'; then
    echo "k8s check: installing kubectl (apt)" >&2
    apt-get install -y -qq kubectl >/dev/null 2>&1 || true
    pick_renderer
  fi
fi
if [ ${#renderer[@]} -eq 0 ]; then
  why="no kustomize 5 on this machine (found: ${found:-neither kubectl nor kustomize});"
  why="$why Debian offers only kubernetes-client 1.20, whose kustomize v2 cannot read k8s/:"
  why="$why install kubectl 1.27+ or kustomize 5"
  # Under CI=true a check that skips itself is a failure (K8S_CHECK_REQUIRED=0 overrides).
  [ "${K8S_CHECK_REQUIRED:-$([ "${CI:-}" = true ] && echo 1 || echo 0)}" = 1 ] && fail "$why"
  echo "k8s check: SKIPPED: $why" >&2
  exit 0
fi

# --- kubernetes-validate and checkov in a virtualenv -----------------------------
venv="$tools_dir/venv"
stamp="$venv/.requirements"
if [ "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ] ||
  ! "$venv/bin/python" -c 'import checkov, kubernetes_validate' >/dev/null 2>&1; then
  echo "k8s check: installing ${requirements[*]} into $venv (first run only)" >&2
  command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 >/dev/null; }
  rm -rf "$venv"
  mkdir -p "$tools_dir"
  if ! python3 -m venv "$venv" >"$work/venv.log" 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv" >"$work/venv.log" 2>&1 || { cat "$work/venv.log" >&2; fail "could not create $venv"; }
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input "${requirements[@]}" \
    >"$work/pip.log" 2>&1 || { tail -n 30 "$work/pip.log" >&2; fail "pip install ${requirements[*]}"; }
  echo "${requirements[*]}" >"$stamp"
fi
py="$venv/bin/python"

# --- generated files ------------------------------------------------------------
"$py" scripts/gen-k8s-monitoring.py --check ||
  fail "generated monitoring files are out of date: run python3 scripts/gen-k8s-monitoring.py"

# --- 1. render ------------------------------------------------------------------
# From a copy of k8s/ that leaves out the prod overlay's secret files (git-ignored, made
# by secrets/generate.sh): the check never reads real secrets, and must not be given
# them. prod, and every prod-* built on it, must fail to render without those files
# (prod holds no secret value of its own); then the overlay's own generator makes
# throwaway ones in the copy, and everything is rendered.
prod_secrets=k8s/overlays/prod/secrets
. scripts/lib/need.sh
need openssl:openssl || fail "openssl is needed ($prod_secrets/generate.sh makes the throwaway key with it)"
# (observability/: the monitoring component takes the dashboards from there.)
tar -C . --exclude="$prod_secrets/*" -cf - k8s observability | tar -C "$work" -xf -
for f in .gitignore shop-secrets.env.example generate.sh; do
  cp -p "$prod_secrets/$f" "$work/$prod_secrets/$f" || fail "$prod_secrets/$f is missing"
done
for dir in "$work"/k8s/overlays/prod*/; do
  name=$(basename "$dir")
  if "${renderer[@]}" "$dir" >/dev/null 2>"$work/$name.err"; then
    fail "k8s/overlays/$name renders without the secret files in $prod_secrets: prod must hold no secret value (k8s/README.md, \"Secrets\")"
  fi
  grep -Eq "secrets/(shop-secrets\.env|identity-signing-keys\.pem)" "$work/$name.err" ||
    { cat "$work/$name.err" >&2; fail "rendering k8s/overlays/$name without secret files failed, but not for want of them"; }
done
sh "$work/$prod_secrets/generate.sh" "$work/$prod_secrets" >"$work/generate.log" 2>&1 ||
  { cat "$work/generate.log" >&2; fail "$prod_secrets/generate.sh"; }
overlays=()
for dir in "$work"/k8s/overlays/*/; do
  name=$(basename "$dir")
  overlays+=("$name")
  "${renderer[@]}" "$dir" >"$work/$name.yaml" 2>"$work/$name.err" ||
    { cat "$work/$name.err" >&2; fail "rendering k8s/overlays/$name"; }
  # kustomize reports deprecated fields on stderr: keep the kustomizations clean.
  [ -s "$work/$name.err" ] && { cat "$work/$name.err" >&2; fail "kustomize warned on k8s/overlays/$name"; }
done
[ ${#overlays[@]} -gt 0 ] || fail "no overlay in k8s/overlays/"

# --- 2. what the manifests promise ----------------------------------------------
"$py" - "$namespace" "$work" "$work/$prod_secrets" "${overlays[@]}" <<'PY' || fail "manifest rules (above)"
import base64, ipaddress, json, re, sys, yaml

namespace, work, prod_secrets, overlays = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
errors = []
CLUSTER_SCOPED = {"Namespace"}
SERVICES = {"inventory": 7001, "order": 7002, "pricing": 7003, "identity": 7004}


def is_prod(overlay):
    """prod, or prod plus something (prod-monitoring)."""
    return overlay == "prod" or overlay.startswith("prod-")


def err(overlay, msg):
    errors.append(f"{overlay}: {msg}")


def secret_values(secret):
    values = dict(secret.get("stringData", {}))
    for key, value in secret.get("data", {}).items():
        values[key] = base64.b64decode(value).decode()
    return values


def pod_env(w, config):
    """A workload's first container's environment: ConfigMaps (later wins), then env."""
    c = w["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for ref in c.get("envFrom", []):
        env.update(config.get(ref.get("configMapRef", {}).get("name"), {}))
    for e in c.get("env", []):
        env[e["name"]] = e.get("value", e.get("valueFrom"))
    return env


def allowed(policies, src, dst, port):
    """Whether src's egress and dst's ingress policies (named after them) let src reach dst:port."""
    def selects(peers, name):
        return any(p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == name
                   for p in peers)
    def on_port(rule):
        return any(p.get("port") == port for p in rule.get("ports", []))
    out = any(selects(r.get("to", []), dst) and on_port(r)
              for r in policies.get(src, {}).get("spec", {}).get("egress", []))
    into = any(selects(r.get("from", []), src) and on_port(r)
               for r in policies.get(dst, {}).get("spec", {}).get("ingress", []))
    return out and into


def shop_secret(by_kind):
    """The Secret shop-secrets: by that name (dev) or kustomize's generated shop-secrets-<hash> (prod)."""
    for name, secret in by_kind.get("Secret", {}).items():
        if re.fullmatch(r"shop-secrets(-[a-z0-9]{10})?", name):
            return secret_values(secret)
    return {}


def check_access_control(overlay, by_kind, config, workloads):
    """prod requires tokens; wherever a service trusts an issuer it is identity, reachable."""
    secret = shop_secret(by_kind)
    secrets = {name: secret_values(s) for name, s in by_kind.get("Secret", {}).items()}
    for name, w in workloads.items():
        for c in w["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref["key"] not in secrets.get(ref["name"], {}):
                    err(overlay, f"{name}: {e['name']} reads key {ref['key']}, which Secret {ref['name']} lacks")
    if "identity" not in workloads:
        return
    issuer = pod_env(workloads["identity"], config).get("IDENTITY_ISSUER")
    policies = by_kind.get("NetworkPolicy", {})
    for service in ("inventory", "pricing", "order"):
        env = pod_env(workloads.get(service, {"spec": {"template": {"spec": {"containers": [{}]}}}}), config)
        if is_prod(overlay) and (env.get("AUTH_ISSUER") is None or env.get("AUTH_REQUIRED") != "true"):
            err(overlay, f"{service}: prod requires tokens: AUTH_ISSUER and AUTH_REQUIRED=true")
        if overlay == "dev" and "AUTH_ISSUER" in env:
            err(overlay, f"{service}: access control is off in dev (as in docker compose's default)")
        if "AUTH_ISSUER" in env:
            if env["AUTH_ISSUER"] != issuer:
                err(overlay, f"{service}: AUTH_ISSUER {env['AUTH_ISSUER']} is not identity's IDENTITY_ISSUER {issuer}")
            if not allowed(policies, service, "identity", 7004):
                err(overlay, f"{service}: the NetworkPolicies do not let it reach identity:7004 (keys)")
    order = pod_env(workloads.get("order", {"spec": {"template": {"spec": {"containers": [{}]}}}}), config)
    if is_prod(overlay) or "AUTH_CLIENT_ID" in order:
        ref = (order.get("AUTH_CLIENT_SECRET") or {}).get("secretKeyRef", {})
        client = order.get("AUTH_CLIENT_ID")
        if not client or not ref:
            err(overlay, "order: needs AUTH_CLIENT_ID and AUTH_CLIENT_SECRET from the Secret")
        else:
            clients = json.loads(secret.get("IDENTITY_CLIENTS", "[]"))
            secrets = [c.get("client_secret") for c in clients if c.get("client_id") == client]
            if secrets != [secret.get(ref.get("key"))]:
                err(overlay, f"order: the Secret's {ref.get('key')} is not the secret of client "
                             f"{client!r} in IDENTITY_CLIENTS")


def read_env_file(path):
    """KEY=value lines as kustomize's secretGenerator reads them (verbatim, # comments)."""
    pairs = {}
    for line in open(path).read().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def demo_atoms(dev_secret):
    """The secret parts of the dev overlay's published demo values: whole passwords and
    tokens, the passwords and client secrets inside the JSON, each line of the key."""
    atoms = set()
    for key, value in dev_secret.items():
        if key.endswith("_DATABASE_URL"):
            continue  # its password is the *_DB_PASSWORD, already an atom
        if key in ("IDENTITY_CLIENTS", "IDENTITY_ACCOUNTS"):
            for entry in json.loads(value):
                atoms.update(v for k, v in entry.items() if k in ("password", "client_secret"))
        elif "PRIVATE KEY" in value:
            atoms.update(line for line in value.splitlines() if len(line) >= 16 and "PRIVATE KEY" not in line)
        else:
            atoms.add(value)
    return {a for a in atoms if a}


PLACEHOLDER = re.compile(r"placeholder|change-?me|demo|<[a-z0-9-]+>", re.IGNORECASE)


def check_secrets(overlay, by_kind, config, workloads, text, demo):
    """prod: the Secret is exactly the git-ignored files' (here the throwaway ones), with
    no demo or placeholder value anywhere; dev: the demo key is flagged as published."""
    identity_env = pod_env(workloads["identity"], config) if "identity" in workloads else {}
    allow = identity_env.get("IDENTITY_ALLOW_PUBLISHED_KEYS")
    if overlay == "dev" and allow != "true":
        err(overlay, "identity signs with the demo key published in this repository: "
                     "set IDENTITY_ALLOW_PUBLISHED_KEYS=true (dev only)")
    if not is_prod(overlay):
        return
    if allow is not None:
        err(overlay, f"IDENTITY_ALLOW_PUBLISHED_KEYS must not be set in prod, got {allow!r}")
    expected = read_env_file(f"{prod_secrets}/shop-secrets.env")
    expected["IDENTITY_SIGNING_KEYS"] = open(f"{prod_secrets}/identity-signing-keys.pem").read()
    secrets = {name: secret_values(s) for name, s in by_kind.get("Secret", {}).items()}
    if shop_secret(by_kind) != expected or len(secrets) != 1:
        err(overlay, f"the only Secret must be shop-secrets generated from {prod_secrets.split('/k8s/')[-1]} "
                     f"(shop-secrets.env, identity-signing-keys.pem) and nothing else; got {sorted(secrets)}")
    values = [v for s in secrets.values() for v in s.values()]
    for key, value in shop_secret(by_kind).items():
        if PLACEHOLDER.search(value):
            err(overlay, f"shop-secrets' {key} holds a placeholder: {PLACEHOLDER.search(value).group(0)!r}")
    haystack = "\n".join([text, *values])
    for atom in sorted(demo):
        if atom in haystack:
            err(overlay, f"a demo value of overlays/dev/demo-secrets.yaml is in the render: {atom[:12]}...")


def check_gateway(overlay, config, workloads):
    """GATEWAY_TRUSTED_PROXIES: addresses or CIDRs only; prod trusts its ingress controller's."""
    if "client" not in workloads:
        return
    value = pod_env(workloads["client"], config).get("GATEWAY_TRUSTED_PROXIES") or ""
    entries = value.replace(",", " ").split()
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            err(overlay, f"client: GATEWAY_TRUSTED_PROXIES entry {entry!r} is not an address or CIDR")
    if is_prod(overlay) and not entries:
        err(overlay, "client: behind the Ingress the gateway must trust the controller's range "
                     "(GATEWAY_TRUSTED_PROXIES), else every customer shares one rate-limit bucket")


PRODUCERS = ("inventory", "pricing", "order")
NATS_PROBE = "/healthz?js-enabled-only=true"


def check_events(overlay, by_kind, config, workloads):
    """The events broker (nats) and what the services need of it."""
    nats = workloads.get("nats")
    if not nats or nats["kind"] != "StatefulSet":
        err(overlay, "no StatefulSet nats (the events broker)")
        return
    spec, pod = nats["spec"], nats["spec"]["template"]["spec"]
    c = pod["containers"][0]
    replicas = spec.get("replicas", 1)
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports != {"client": 4222, "cluster": 6222, "monitor": 8222}:
        err(overlay, f"nats: ports {ports}, expected client 4222, cluster 6222, monitor 8222")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != NATS_PROBE or get.get("port") not in ("monitor", 8222):
            err(overlay, f"nats: {probe} must GET {NATS_PROBE} on the monitoring port, not {get}")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    claims = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])]
    if mounts.get("/data") not in claims:
        err(overlay, "nats: its store /data must be on a volumeClaimTemplate")
    services = by_kind.get("Service", {})
    client, headless = services.get("nats", {}).get("spec", {}), services.get("nats-headless", {}).get("spec", {})
    if [p["port"] for p in client.get("ports", [])] != [4222] or client.get("clusterIP") == "None":
        err(overlay, "nats: needs a client Service nats on 4222")
    if headless.get("clusterIP") != "None" or not headless.get("publishNotReadyAddresses") \
            or 6222 not in [p["port"] for p in headless.get("ports", [])] or spec.get("serviceName") != "nats-headless":
        err(overlay, "nats: needs a headless Service nats-headless (6222, publishNotReadyAddresses) as its serviceName")
    conf_map = next((v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v), None)
    conf = config.get(conf_map, {}).get("nats.conf", "")
    if "jetstream" not in conf or '"/data"' not in conf:
        err(overlay, "nats: nats.conf must enable JetStream with its store in /data")
    policies = by_kind.get("NetworkPolicy", {})
    for service in PRODUCERS:
        env = pod_env(workloads.get(service, {"spec": {"template": {"spec": {"containers": [{}]}}}}), config)
        if env.get("NATS_URL") != "nats://nats:4222":
            err(overlay, f"{service}: NATS_URL must be nats://nats:4222, got {env.get('NATS_URL')}")
        if not allowed(policies, service, "nats", 4222):
            err(overlay, f"{service}: the NetworkPolicies do not let it reach nats:4222")
        stream_replicas = int(env.get("EVENTS_STREAM_REPLICAS", "1"))
        if stream_replicas > replicas:
            err(overlay, f"{service}: EVENTS_STREAM_REPLICAS {stream_replicas} exceeds the {replicas} nats servers")
        if is_prod(overlay) and stream_replicas != 3:
            err(overlay, f"{service}: prod's streams need EVENTS_STREAM_REPLICAS=3, got {stream_replicas}")
    if not allowed(policies, "nats", "nats", 6222):
        err(overlay, "nats: the NetworkPolicies do not let its servers reach each other on 6222")
    for rule in policies.get("nats", {}).get("spec", {}).get("ingress", []):
        peers = rule.get("from", [])
        names = {p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") for p in peers}
        for port in [p.get("port") for p in rule.get("ports", [])] or [None]:
            allowed_names = {4222: set(PRODUCERS), 6222: {"nats"}}.get(port)
            if not peers or port is None:
                err(overlay, f"nats: an ingress rule open to every source or port: {rule}")
            elif allowed_names is not None and (not names <= allowed_names or
                                                any("namespaceSelector" in p for p in peers)):
                err(overlay, f"nats: port {port} admits {sorted(map(str, names))}, only {sorted(allowed_names)} may")
            elif port == 8222 and not all("namespaceSelector" in p and "podSelector" in p for p in peers):
                err(overlay, "nats: monitoring (8222) only from the scraper's namespace and pods")
            elif port not in (4222, 6222, 8222):
                err(overlay, f"nats: ingress on unexpected port {port}")
    if is_prod(overlay):
        if replicas != 3:
            err(overlay, f"nats: prod runs a three-server JetStream cluster, not {replicas}")
        routes = [f"nats://nats-{i}.nats-headless:6222" for i in range(3)]
        if "cluster {" not in conf or "name: " not in conf.split("cluster {", 1)[-1] \
                or not all(r in conf for r in routes):
            err(overlay, f"nats: nats.conf needs a cluster block with a name and the routes {routes}")
        if "nats" not in by_kind.get("PodDisruptionBudget", {}):
            err(overlay, "nats: needs a PodDisruptionBudget")
        anti = pod.get("affinity", {}).get("podAntiAffinity", {})
        terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution", []) + \
            [t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
        if not any(t["topologyKey"] == "kubernetes.io/hostname" for t in terms):
            err(overlay, "nats: needs podAntiAffinity on kubernetes.io/hostname")


DEPENDENCIES = {"inventory": ("INVENTORY_URL", 7001), "pricing": ("PRICING_URL", 7003)}


def check_discovery(overlay, by_kind, config, workloads):
    """Order finds every ready replica of its dependencies: each URL names a headless
    Service (DNS gives the pods' addresses) that selects the dependency's pods, on its
    port, leaving out pods that are not ready, whose Deployment has a readiness probe."""
    env = pod_env(workloads.get("order", {"spec": {"template": {"spec": {"containers": [{}]}}}}), config)
    services = by_kind.get("Service", {})
    for dependency, (variable, port) in DEPENDENCIES.items():
        url = env.get(variable, "")
        host, _, url_port = url.removeprefix("http://").rstrip("/").partition(":")
        spec = services.get(host, {}).get("spec", {})
        if spec.get("clusterIP") != "None":
            err(overlay, f"order: {variable} {url!r} must name a headless Service (clusterIP: None), "
                         "so that order sees every replica")
            continue
        if spec.get("selector") != {"app.kubernetes.io/name": dependency}:
            err(overlay, f"Service/{host}: must select the {dependency} pods, got {spec.get('selector')}")
        if url_port != str(port) or port not in [p.get("port") for p in spec.get("ports", [])]:
            err(overlay, f"order: {variable} {url!r} must use port {port}, served by Service/{host}")
        if spec.get("publishNotReadyAddresses"):
            err(overlay, f"Service/{host}: publishNotReadyAddresses would send calls to replicas not ready")
        containers = workloads.get(dependency, {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])
        if "readinessProbe" not in containers[0]:
            err(overlay, f"{dependency}: needs a readinessProbe, which decides the replicas order finds")
    if env.get("LOAD_BALANCER", "p2c") not in ("p2c", "round_robin"):
        err(overlay, f"order: LOAD_BALANCER must be p2c or round_robin, got {env.get('LOAD_BALANCER')!r}")
    if not 1000 <= int(env.get("DISCOVERY_REFRESH_MS", "5000")) <= 30000:
        err(overlay, "order: DISCOVERY_REFRESH_MS outside 1000-30000: new replicas would wait, or DNS be hammered")


MONITORING_API = "monitoring.coreos.com/v1"
# The fields the Prometheus Operator's CRDs define (v0.7x), for the parts used here:
# anything else is a typo the operator would reject or, worse, ignore.
SM_SPEC = {"jobLabel", "selector", "endpoints", "namespaceSelector", "targetLabels", "podTargetLabels",
           "sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit",
           "attachMetadata", "scrapeProtocols", "keepDroppedTargets", "scrapeClass", "bodySizeLimit"}
SM_ENDPOINT = {"port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout", "tlsConfig",
               "authorization", "basicAuth", "oauth2", "bearerTokenSecret", "honorLabels", "honorTimestamps",
               "metricRelabelings", "relabelings", "proxyUrl", "followRedirects", "enableHttp2", "filterRunning"}
RULE_GROUP = {"name", "interval", "rules", "limit", "partial_response_strategy", "query_offset", "labels"}
RULE = {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"


def selects(selector, labels):
    """Whether a label selector (matchLabels, matchExpressions In) selects these labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        if e["operator"] != "In" or labels.get(e["key"]) not in e.get("values", []):
            return False
    return bool(selector)


def check_crd_shape(overlay, d):
    """A monitoring.coreos.com object: known kinds and fields only."""
    where = f"{d['kind']}/{d['metadata']['name']}"
    spec = d.get("spec", {})
    if d["apiVersion"] != MONITORING_API or d["kind"] not in ("ServiceMonitor", "PrometheusRule"):
        err(overlay, f"{where}: unexpected {d['apiVersion']} kind")
        return
    if set(d) - {"apiVersion", "kind", "metadata", "spec"}:
        err(overlay, f"{where}: unknown top-level fields {sorted(set(d) - {'apiVersion', 'kind', 'metadata', 'spec'})}")
    if d["kind"] == "ServiceMonitor":
        if set(spec) - SM_SPEC:
            err(overlay, f"{where}: unknown spec fields {sorted(set(spec) - SM_SPEC)}")
        for ep in spec.get("endpoints") or [{}]:
            if set(ep) - SM_ENDPOINT or not ep:
                err(overlay, f"{where}: endpoint fields {sorted(ep)}, known: {sorted(SM_ENDPOINT)}")
            for key in ("interval", "scrapeTimeout"):
                if key in ep and not re.match(DURATION, ep[key]):
                    err(overlay, f"{where}: {key} {ep[key]!r} is not a Prometheus duration")
        return
    groups = spec.get("groups")
    if set(spec) != {"groups"} or not isinstance(groups, list):
        err(overlay, f"{where}: spec must be exactly groups: [...]")
        return
    names = [g.get("name") for g in groups]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        err(overlay, f"{where}: group names must be unique and non-empty: {names}")
    for g in groups:
        if set(g) - RULE_GROUP or not g.get("rules"):
            err(overlay, f"{where}: group {g.get('name')}: fields {sorted(g)}, and rules must not be empty")
        for r in g.get("rules") or []:
            name = r.get("record") or r.get("alert")
            if ("record" in r) == ("alert" in r) or set(r) - RULE:
                err(overlay, f"{where}: rule {name}: exactly one of record/alert, fields from {sorted(RULE)}")
            if not isinstance(r.get("expr"), str) or not r["expr"].strip():
                err(overlay, f"{where}: rule {name}: expr must be a non-empty string")
            for key in ("for", "keep_firing_for"):
                if key in r and not re.match(DURATION, str(r[key])):
                    err(overlay, f"{where}: rule {name}: {key} {r[key]!r} is not a duration")
            for key in ("labels", "annotations"):
                if not all(isinstance(k, str) and isinstance(v, str) for k, v in (r.get(key) or {}).items()):
                    err(overlay, f"{where}: rule {name}: {key} must map strings to strings")
            if "record" in r and "annotations" in r:
                err(overlay, f"{where}: recording rule {name} cannot have annotations")


def check_monitoring(overlay, by_kind):
    """components/monitoring: scraped services, the scrape NetworkPolicy, rules, dashboards."""
    services = by_kind.get("Service", {})
    monitors = by_kind.get("ServiceMonitor", {})
    releases = {d["metadata"].get("labels", {}).get("release")
                for kind in ("ServiceMonitor", "PrometheusRule") for d in by_kind.get(kind, {}).values()}
    if len(releases) != 1 or None in releases:
        err(overlay, f"the ServiceMonitors and PrometheusRules need one and the same release label, got {releases}")
    for name in SERVICES:
        sm = monitors.get(name, {}).get("spec")
        if not sm:
            err(overlay, f"no ServiceMonitor {name}")
            continue
        eps = sm.get("endpoints", [])
        if [(e.get("port"), e.get("path"), e.get("interval")) for e in eps] != [("http", "/metrics", "15s")] \
                or sm.get("jobLabel") != "app.kubernetes.io/name":
            err(overlay, f"ServiceMonitor/{name}: one endpoint port http, path /metrics, interval 15s, "
                         "jobLabel app.kubernetes.io/name")
        hits = [s for s in services.values() if selects(sm.get("selector", {}), s["metadata"].get("labels", {}))]
        if [s["metadata"]["name"] for s in hits] != [name] or \
                "http" not in [p.get("name") for p in hits[0]["spec"]["ports"]] or \
                hits[0]["metadata"]["labels"].get("app.kubernetes.io/name") != name:
            err(overlay, f"ServiceMonitor/{name} must select exactly Service {name}, with a port http "
                         f"and the jobLabel's label, got {[s['metadata']['name'] for s in hits]}")
        ok = False
        for np in by_kind.get("NetworkPolicy", {}).values():
            if not selects(np["spec"].get("podSelector", {}), {"app.kubernetes.io/name": name}):
                continue
            for rule in np["spec"].get("ingress", []):
                from_prometheus = any(
                    p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "monitoring"
                    and p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "prometheus"
                    for p in rule.get("from", []))
                ports = [p.get("port") for p in rule.get("ports", [])]
                ok = ok or (from_prometheus and ("http" in ports or SERVICES[name] in ports))
        if not ok:
            err(overlay, f"{name}: no NetworkPolicy lets Prometheus (namespace monitoring) reach its http port")
    if len(by_kind.get("PrometheusRule", {})) != 1:
        err(overlay, "expected one PrometheusRule (k8s/components/monitoring/prometheusrule.yaml)")
    for name, cm in by_kind.get("ConfigMap", {}).items():
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
            continue
        for key, text in cm.get("data", {}).items():
            try:
                dashboard = json.loads(text)
            except ValueError as e:
                err(overlay, f"ConfigMap/{name}: {key} is not JSON: {e}")
                continue
            if not key.endswith(".json") or "panels" not in dashboard or len(text) > 1_000_000:
                err(overlay, f"ConfigMap/{name}: {key} must be a dashboard (.json with panels, under 1 MB)")


dev_docs = [d for d in yaml.safe_load_all(open(f"{work}/dev.yaml")) if d] if "dev" in overlays else []
demo = demo_atoms(shop_secret({"Secret": {d["metadata"]["name"]: d for d in dev_docs if d["kind"] == "Secret"}}))
if not demo:
    errors.append("dev: no demo Secret shop-secrets to check prod against")
for overlay in overlays:
    text = open(f"{work}/{overlay}.yaml").read()
    docs = [d for d in yaml.safe_load_all(text) if d]
    monitoring = [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    for d in monitoring:
        check_crd_shape(overlay, d)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
        if d["kind"] not in CLUSTER_SCOPED and d["metadata"].get("namespace") != namespace:
            err(overlay, f"{d['kind']}/{d['metadata']['name']} is not in namespace {namespace}")
    sas = by_kind.get("ServiceAccount", {})
    config = {name: d.get("data", {}) for name, d in by_kind.get("ConfigMap", {}).items()}
    workloads = {**by_kind.get("Deployment", {}), **by_kind.get("StatefulSet", {})}
    for name in [*SERVICES, "client", "postgres", "nats"]:
        if name not in workloads:
            err(overlay, f"no Deployment/StatefulSet {name}")
    for name, w in workloads.items():
        pod = w["spec"]["template"]["spec"]
        where = f"{w['kind']}/{name}"
        sa = pod.get("serviceAccountName")
        if not sa or sa == "default" or sa not in sas:
            err(overlay, f"{where}: needs its own ServiceAccount")
        elif sas[sa].get("automountServiceAccountToken") is not False:
            err(overlay, f"ServiceAccount/{sa}: automountServiceAccountToken must be false")
        if pod.get("automountServiceAccountToken") is not False:
            err(overlay, f"{where}: automountServiceAccountToken must be false")
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            err(overlay, f"{where}: pod securityContext needs runAsNonRoot and seccomp RuntimeDefault")
        if "terminationGracePeriodSeconds" not in pod:
            err(overlay, f"{where}: set terminationGracePeriodSeconds")
        for c in pod.get("initContainers", []) + pod["containers"]:
            cw = f"{where}/{c['name']}"
            image = c["image"]
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                err(overlay, f"{cw}: image {image} has no fixed tag (kustomization images:)")
            sc = c.get("securityContext", {})
            if not (sc.get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True
                    and sc.get("allowPrivilegeEscalation") is False
                    and sc.get("capabilities", {}).get("drop") == ["ALL"]
                    and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"):
                err(overlay, f"{cw}: securityContext needs runAsNonRoot, readOnlyRootFilesystem, "
                             "allowPrivilegeEscalation false, drop ALL, seccomp RuntimeDefault")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(kind, {})):
                    err(overlay, f"{cw}: resources.{kind} needs cpu and memory")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in c:
                    err(overlay, f"{cw}: no {probe}")
            if name in SERVICES:
                paths = {p: c.get(p, {}).get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe")}
                if paths != {"livenessProbe": "/health/live", "readinessProbe": "/health/ready"}:
                    err(overlay, f"{cw}: probes must use /health/live and /health/ready, not {paths}")
                if c.get("lifecycle", {}).get("preStop") is None:
                    err(overlay, f"{cw}: no preStop")
                ports = [p["containerPort"] for p in c.get("ports", [])]
                if ports != [SERVICES[name]]:
                    err(overlay, f"{cw}: port {ports}, contract says {SERVICES[name]}")
    # Chaos: off everywhere in prod, the seed's demo values in dev.
    def chaos(service):
        env = {}
        for ref in workloads.get(service, {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("envFrom", []):
            env.update(config.get(ref.get("configMapRef", {}).get("name"), {}))
        return {k: v for k, v in env.items() if k.startswith("CHAOS_") and k not in ("CHAOS_DELAY_MS", "CHAOS_CONTROL")}
    # Live fault control (GET/PUT /admin/chaos): what the service's ConfigMaps say.
    def chaos_control(service):
        env = {}
        for ref in workloads.get(service, {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("envFrom", []):
            env.update(config.get(ref.get("configMapRef", {}).get("name"), {}))
        return env.get("CHAOS_CONTROL", "off")
    if is_prod(overlay):
        for service in [*SERVICES, "client"]:
            if any(float(v) != 0 for v in chaos(service).values()):
                err(overlay, f"{service}: chaos must be off in prod, got {chaos(service)}")
            if service in SERVICES and chaos_control(service) != "off":
                err(overlay, f"{service}: CHAOS_CONTROL must be off in prod, got {chaos_control(service)!r}")
            w = workloads.get(service, {})
            if w.get("spec", {}).get("replicas", 1) < 2:
                err(overlay, f"{service}: needs at least 2 replicas")
            hpa = by_kind.get("HorizontalPodAutoscaler", {}).get(service)
            if not hpa or hpa["apiVersion"] != "autoscaling/v2" or hpa["spec"].get("minReplicas", 1) < 2 \
                    or hpa["spec"]["scaleTargetRef"]["name"] != service \
                    or not any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"].get("metrics", [])):
                err(overlay, f"{service}: needs an autoscaling/v2 CPU HorizontalPodAutoscaler, minReplicas >= 2")
            if service not in by_kind.get("PodDisruptionBudget", {}):
                err(overlay, f"{service}: needs a PodDisruptionBudget")
            affinity = w.get("spec", {}).get("template", {}).get("spec", {}).get("affinity", {})
            terms = affinity.get("podAntiAffinity", {}).get("preferredDuringSchedulingIgnoredDuringExecution", [])
            if not any(t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname" for t in terms):
                err(overlay, f"{service}: needs preferred podAntiAffinity on kubernetes.io/hostname")
        if not any(r["http"]["paths"][0]["backend"]["service"]["name"] == "client"
                   for i in by_kind.get("Ingress", {}).values() for r in i["spec"]["rules"]):
            err(overlay, "needs an Ingress to the client gateway")
    if overlay == "dev":
        expected = {"inventory": {"CHAOS_DELAY_RATE": "0.1", "CHAOS_FAILURE_RATE": "0"},
                    "pricing": {"CHAOS_DELAY_RATE": "0", "CHAOS_FAILURE_RATE": "0.1"}}
        for service, want in expected.items():
            if chaos(service) != want:
                err(overlay, f"{service}: demo chaos should be {want}, got {chaos(service)}")
        for service in SERVICES:
            if chaos_control(service) != "on":
                err(overlay, f"{service}: CHAOS_CONTROL should be on in dev (the panel's fault controls), got {chaos_control(service)!r}")
    if "default-deny-all" not in by_kind.get("NetworkPolicy", {}):
        err(overlay, "no default-deny NetworkPolicy")
    check_access_control(overlay, by_kind, config, workloads)
    check_secrets(overlay, by_kind, config, workloads, text, demo)
    check_gateway(overlay, config, workloads)
    check_events(overlay, by_kind, config, workloads)
    check_discovery(overlay, by_kind, config, workloads)
    if monitoring or "monitoring" in overlay:
        check_monitoring(overlay, by_kind)

for e in errors:
    print(f"  {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

# --- 3. schemas -----------------------------------------------------------------
objects=0
for name in "${overlays[@]}"; do
  objects=$((objects + $(grep -c '^kind:' "$work/$name.yaml")))
  # The built-in kinds only: the operator's (monitoring.coreos.com) have no schema here
  # and were checked in step 2.
  "$py" - "$work/$name.yaml" "$work/$name.builtin.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
builtin = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
yaml.safe_dump_all(builtin, open(sys.argv[2], "w"), sort_keys=False)
PY
  for version in "${k8s_versions[@]}"; do
    "$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$version" "$work/$name.builtin.yaml" \
      >"$work/validate.out" 2>&1 || { cat "$work/validate.out" >&2; fail "schema validation of $name against Kubernetes $version"; }
    # It reports some problems without a non-zero exit: any output is one.
    [ -s "$work/validate.out" ] && { cat "$work/validate.out" >&2; fail "schema validation of $name against Kubernetes $version"; }
  done
done

# --- 4. checkov -----------------------------------------------------------------
mkdir "$work/rendered"
for name in "${overlays[@]}"; do cp "$work/$name.yaml" "$work/rendered/"; done
# HOME and the working directory are the empty work folder, and checkov's own skip
# variables are cleared, so that no personal .checkov.yaml or environment skips a
# check: the only skips are the manifests' annotations.
(cd "$work" && env -u CKV_SKIP_CHECK -u CKV_CHECK -u CKV_SOFT_FAIL_ON HOME="$work" \
  CKV_SKIP_PACKAGE_UPDATE_CHECK=true "$venv/bin/checkov" --skip-download \
  --framework kubernetes --directory rendered --output json >"$work/checkov.json" 2>"$work/checkov.err") || true
checkov_summary=$("$py" - "$work/checkov.json" k8s/POLICY-EXCEPTIONS.md <<'PY'
import json, re, sys

try:
    report = json.load(open(sys.argv[1]))
except ValueError:
    print("checkov printed no JSON report", file=sys.stderr)
    sys.exit(1)
reports = report if isinstance(report, list) else [report]
documented = set(re.findall(r"CKV2?_K8S_\d+", open(sys.argv[2]).read()))
passed = failed = skipped = 0
problems = []
for r in reports:
    if "results" not in r:  # nothing scanned
        continue
    res, summary = r["results"], r["summary"]
    passed += summary["passed"]
    failed += summary["failed"]
    skipped += summary["skipped"]
    for c in res.get("failed_checks", []):
        problems.append(f"FAILED {c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path'].lstrip('/')})")
    for c in res.get("skipped_checks", []):
        comment = c["check_result"].get("suppress_comment", "")
        if not comment or comment == "No comment provided":
            problems.append(f"SKIPPED without a reason: {c['check_id']} on {c['resource']}")
        if c["check_id"] not in documented:
            problems.append(f"SKIPPED but not in k8s/POLICY-EXCEPTIONS.md: {c['check_id']} on {c['resource']}")
    if summary.get("parsing_errors") or res.get("parsing_errors"):
        problems.append(f"checkov could not parse: {res.get('parsing_errors')}")
if passed == 0:
    problems.append("checkov ran no check")
for p in problems:
    print(f"  {p}", file=sys.stderr)
print(f"checkov {passed} passed, {failed} failed, {skipped} skipped (documented)")
sys.exit(1 if problems else 0)
PY
) || { [ -s "$work/checkov.err" ] && tail -n 20 "$work/checkov.err" >&2; fail "checkov (above)"; }

echo "k8s check: OK: ${#overlays[@]} overlays (${overlays[*]}), $objects objects rendered," \
  "schemas of Kubernetes ${k8s_versions[*]} (strict), $checkov_summary, $((SECONDS - started)) s"
