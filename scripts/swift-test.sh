#!/usr/bin/env bash
# Runs `swift test` with the given arguments, keeping a full log under .local/, and on failure
# repeats the failed tests and their recorded issues at the very end, where a CI log that
# shows only its tail still shows why.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .local
log=".local/swift-test-$(date +%s)-$$.log"
swift test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo
  echo "==== swift test failed (exit $status); full log: $log ===="
  echo "---- failures and recorded issues ----"
  grep -E '✘|Fatal error|fatal error|error:|Exited with (unexpected )?signal|exited with signal' "$log" | head -150
fi
exit "$status"
