#!/usr/bin/env bash
# Fails when the README's walkthrough block differs from scripts/walkthrough.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
script=$(sed -n '/^# --- walkthrough ---$/,/^# --- end ---$/p' scripts/walkthrough.sh | sed '1d;$d')
readme=$(sed -n '/^<!-- walkthrough -->$/,/^<!-- end walkthrough -->$/p' README.md | sed '1,2d;$d' | sed '$d')
if [ "$script" != "$readme" ]; then
  echo "README walkthrough and scripts/walkthrough.sh differ:" >&2
  diff <(echo "$readme") <(echo "$script") >&2 || true
  exit 1
fi
echo "check-readme: the README walkthrough matches scripts/walkthrough.sh"
