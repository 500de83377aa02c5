#!/usr/bin/env bash
# Lints the API contract, Sources/API/Resources/openapi.json, against the OpenAPI 3.1
# specification (openapi-spec-validator, installed into .local/pytools on first use). The
# server is held to the document by APITests/ContractTests; this checks the document itself.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

VERSION="${OPENAPI_SPEC_VALIDATOR_VERSION:-0.7.2}"
VENV="$LOCAL/pytools"
if ! "$VENV/bin/openapi-spec-validator" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "lint-openapi: installing openapi-spec-validator $VERSION into $VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "openapi-spec-validator==$VERSION"
fi
"$VENV/bin/openapi-spec-validator" --schema 3.1.0 Sources/API/Resources/openapi.json
