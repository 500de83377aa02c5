#!/usr/bin/env bash
# Validates the deployment files, then proves the validation bites by feeding it broken
# copies (each must be rejected):
#   - compose/docker-compose.yml with `docker-compose config` (Debian's docker-compose),
#     plus a lint that worker services can scale (no container_name, no host ports);
#   - deploy/k8s rendered with `kubectl kustomize` (or, without kubectl, the files listed in
#     its kustomization in order) and checked by scripts/deploy/validate_k8s.py
#     (kubernetes-validate from PyPI, strict);
#   - compose/prometheus/prometheus.yml with `promtool check config` (Debian's prometheus),
#     and the Grafana provisioning and dashboard with scripts/deploy/validate_dashboards.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
missing=()
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v promtool >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "validate-deploy: installing ${missing[*]}"
  # RUNLEVEL=1: the packages' services are not started; only their tools are used here.
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
TOOLS="$LOCAL/pytools"
if ! "$TOOLS/bin/python" -c "import kubernetes_validate" 2>/dev/null; then
  echo "validate-deploy: installing kubernetes-validate into $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==1.37.0"
fi

# validate_compose DIR [ENV-FILE]: the compose file in DIR is valid with ENV-FILE and its
# workers can scale. The example leaves the secrets empty (compose refuses to start without
# them), so by default it is checked with validation-only secrets filled in.
validate_compose() {
  local dir="$1" env="${2:-}" rendered
  if [ -z "$env" ]; then
    env="$(mktemp)"
    sed -e 's/^\(POSTGRES_PASSWORD\|RABBITMQ_PASSWORD\|GRAFANA_ADMIN_PASSWORD\)=$/\1=validation-only/' \
        -e 's/^JWT_SECRET=$/JWT_SECRET=validation-only-secret-of-at-least-32-characters/' "$dir/.env.example" >"$env"
  fi
  rendered="$(docker-compose -f "$dir/docker-compose.yml" --env-file "$env" config 2>&1)" || { echo "$rendered" >&2; return 1; }
  "$TOOLS/bin/python" - "$rendered" <<'PY'
import sys, yaml
services = yaml.safe_load(sys.argv[1])["services"]
bad = [f"{name}: {key} blocks `--scale`" for name, service in services.items() if name.endswith("-worker")
       for key in ("container_name", "ports") if key in service]
for line in bad:
    print(f"validate-deploy: {line}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

# validate_k8s DIR: the manifests of the kustomization in DIR are valid.
validate_k8s() {
  local dir="$1" rendered
  rendered="$(mktemp)"
  if command -v kubectl >/dev/null; then
    kubectl kustomize "$dir" >"$rendered" || return 1
  else
    "$TOOLS/bin/python" - "$dir" >"$rendered" <<'PY'
import sys, yaml, pathlib
root = pathlib.Path(sys.argv[1])
for name in yaml.safe_load((root / "kustomization.yaml").read_text())["resources"]:
    print("---"); print((root / name).read_text())
PY
  fi
  "$TOOLS/bin/python" scripts/deploy/validate_k8s.py "$rendered"
}

# validate_monitoring DIR: the Prometheus config and Grafana files under DIR (a compose dir).
validate_monitoring() {
  promtool check config "$1/prometheus/prometheus.yml" >/dev/null && "$TOOLS/bin/python" scripts/deploy/validate_dashboards.py "$1/grafana"
}

validate_compose compose
echo "validate-deploy: compose/docker-compose.yml is valid"
validate_k8s deploy/k8s
validate_monitoring compose
echo "validate-deploy: compose/prometheus/prometheus.yml is valid"

# The same checks must reject broken copies.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
expect_rejected() {
  local what="$1"; shift
  if "$@" >"$scratch/out" 2>&1; then
    echo "validate-deploy: a broken copy was accepted ($what)" >&2; cat "$scratch/out" >&2; exit 1
  fi
  echo "validate-deploy: rejected as it should be: $what"
}
broken_compose() {  # broken_compose NAME SED-EXPRESSION
  rm -rf "$scratch/$1"; cp -r compose "$scratch/$1"
  sed -i "$2" "$scratch/$1/docker-compose.yml"
  cmp -s compose/docker-compose.yml "$scratch/$1/docker-compose.yml" && { echo "validate-deploy: the $1 edit changed nothing" >&2; exit 1; }
  echo "$scratch/$1"
}
broken_k8s() {  # broken_k8s NAME FILE SED-EXPRESSION
  rm -rf "$scratch/$1"; cp -r deploy/k8s "$scratch/$1"
  sed -i "$3" "$scratch/$1/$2"
  cmp -s "deploy/k8s/$2" "$scratch/$1/$2" && { echo "validate-deploy: the $1 edit changed nothing" >&2; exit 1; }
  echo "$scratch/$1"
}
expect_rejected "compose: the example's empty secrets (compose must refuse to start without them)" validate_compose compose compose/.env.example
expect_rejected "compose: replicas is not a number" validate_compose "$(broken_compose replicas 's/replicas: ${PAYMENT_WORKERS:-2}/replicas: two/')"
expect_rejected "compose: unknown service key" validate_compose "$(broken_compose unknown-key 's/^    command: \["emporium-api"\]/    commandd: ["emporium-api"]/')"
expect_rejected "compose: a worker with a fixed container_name" validate_compose \
  "$(broken_compose container-name 's/^    command: \["emporium-payment-worker"\]/    command: ["emporium-payment-worker"]\n    container_name: payment/')"
expect_rejected "k8s: replicas is not a number" validate_k8s "$(broken_k8s replicas payment-worker.yaml 's/replicas: 1/replicas: one/')"
expect_rejected "k8s: unknown field (strict)" validate_k8s "$(broken_k8s unknown-field api.yaml 's/terminationGracePeriodSeconds: 30/terminationGracePeriod: 30/')"
expect_rejected "k8s: ScaledObject aimed at a missing Deployment" validate_k8s \
  "$(broken_k8s scaled-object keda-scaledobjects.yaml '0,/name: emporium-stock-worker$/! s/^    name: emporium-stock-worker$/    name: emporium-stock-workers/')"
broken_monitoring() {  # broken_monitoring NAME FILE SED-EXPRESSION
  rm -rf "$scratch/$1"; cp -r compose "$scratch/$1"
  sed -i "$3" "$scratch/$1/$2"
  cmp -s "compose/$2" "$scratch/$1/$2" && { echo "validate-deploy: the $1 edit changed nothing" >&2; exit 1; }
  echo "$scratch/$1"
}
expect_rejected "prometheus: scrape interval is not a duration" validate_monitoring \
  "$(broken_monitoring prom-interval prometheus/prometheus.yml 's/scrape_interval: 10s/scrape_interval: often/')"
expect_rejected "grafana: a panel queries a metric nobody exports" validate_monitoring \
  "$(broken_monitoring grafana-metric grafana/dashboards/emporium.json 's/orders_placed_total/orders_plaecd_total/')"
expect_rejected "grafana: the dashboard is not JSON" validate_monitoring \
  "$(broken_monitoring grafana-json grafana/dashboards/emporium.json '1s/^{/{,/')"
echo "validate-deploy: all deployment files valid; broken copies rejected"
