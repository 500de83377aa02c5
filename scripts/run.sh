#!/usr/bin/env bash
# Builds, migrates, seeds and starts the API and one of each worker in the background, logging to
# .local/logs/. Returns once the API answers GET /health. `make stop` stops them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

HTTP_PORT="${HTTP_PORT:-8080}"
export HTTP_PORT
mkdir -p "$LOCAL/logs"

# Processes from an earlier `make run` are replaced, not duplicated.
if [ -f "$LOCAL/run.pids" ]; then
  while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$LOCAL/run.pids"
  rm -f "$LOCAL/run.pids"
  sleep 1
fi

swift build
BIN="$(swift build --show-bin-path)"
"$BIN/emporium" migrate
"$BIN/emporium" seed

start() {
  local name="$1"; shift
  nohup "$BIN/$name" "$@" >>"$LOCAL/logs/$name.log" 2>&1 &
  echo $! >> "$LOCAL/run.pids"
  echo "run: started $name (pid $!, log .local/logs/$name.log)"
}

start emporium-api
for role in stock payment order notification; do
  start "emporium-$role-worker"
done

for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$HTTP_PORT/health" >/dev/null 2>&1; then
    echo "run: API answers on http://127.0.0.1:$HTTP_PORT (GET /health, GET /ready); stop with 'make stop'"
    curl -fsS "http://127.0.0.1:$HTTP_PORT/ready" && echo
    exit 0
  fi
  sleep 0.5
done
echo "run: the API did not answer GET /health within 60 s; see .local/logs/emporium-api.log" >&2
tail -20 "$LOCAL/logs/emporium-api.log" >&2 || true
exit 1
