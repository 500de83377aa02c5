#!/usr/bin/env bash
# One home per table (ARCHITECTURE.md, "Layout"): every table in sql/ is written (INSERT,
# UPDATE, DELETE) by exactly one store file, and no file under Sources/API or Sources/Workers
# holds SQL text; and the layering that keeps each concern at home: the API and the workers
# neither depend on nor import the CLI's Operations or the Bench, and Messaging imports no
# HTTP framework. Exits non-zero naming each violation.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python3 - <<'PY'
import pathlib, re, sys

root = pathlib.Path(".")
stores = sorted(set(root.glob("Sources/Store/*.swift")) | set(root.glob("Sources/Messaging/*Store.swift")) | {root / "Sources/Operations/Migrator.swift"})
tables = sorted(set(re.findall(r"CREATE TABLE(?: IF NOT EXISTS)? (\w+)", "\n".join(p.read_text() for p in root.glob("sql/*.sql")), re.I)))
problems = []
if not tables:
    problems.append("no tables found in sql/")

def code(path):
    # Comments say what statements do; only code counts.
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("//"))

sources = {path: code(path) for path in root.glob("Sources/**/*.swift")}
for table in tables:
    write = re.compile(rf"\b(INSERT INTO {table}\b|UPDATE {table}\b(\s+\w+)?\s+SET\b|DELETE FROM {table}\b)")
    writers = sorted(str(path) for path, text in sources.items() if write.search(text))
    if len(writers) != 1:
        problems.append(f"table {table} is written by {len(writers)} files, not one store: {writers or 'none'}")
    elif pathlib.Path(writers[0]) not in stores:
        problems.append(f"table {table} is written outside a store: {writers[0]}")

sql = re.compile(r"\b(SELECT\s+[\w*(]|INSERT INTO|UPDATE \w+( \w+)? SET|DELETE FROM|WITH RECURSIVE)\b|\.query\(")
for path, text in sorted(sources.items()):
    if str(path).startswith(("Sources/API/", "Sources/Workers/")):
        for number, line in enumerate(text.splitlines(), 1):
            if sql.search(line):
                problems.append(f"{path}:{number}: SQL outside a store: {line.strip()[:100]}")

# Layering (issue 14): the API links what serves requests, not the CLI's tools or the load
# generator; Messaging knows no HTTP.
package = (root / "Package.swift").read_text()
for target in ("API", "Workers"):
    block = re.search(rf'name: "{target}",\s*dependencies: \[(.*?)\]', package, re.S)
    if not block:
        problems.append(f"Package.swift: target {target} not found")
        continue
    for forbidden in ("Operations", "Bench"):
        if re.search(rf'"{forbidden}"', block.group(1)):
            problems.append(f"Package.swift: target {target} depends on {forbidden}")
for path, text in sorted(sources.items()):
    if str(path).startswith(("Sources/API/", "Sources/Workers/")) and re.search(r"^import (Operations|Bench)$", text, re.M):
        problems.append(f"{path}: imports the CLI's Operations or the Bench")
    if str(path).startswith("Sources/Messaging/") and re.search(r"^import Hummingbird", text, re.M):
        problems.append(f"{path}: Messaging imports Hummingbird")

if problems:
    print("check-stores: " + "\ncheck-stores: ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"check-stores: {len(tables)} tables, each written by one store; no SQL in Sources/API or Sources/Workers; "
      "API and Workers link neither Operations nor Bench; Messaging imports no Hummingbird")
PY
