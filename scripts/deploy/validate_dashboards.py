#!/usr/bin/env python3
"""Checks the Grafana provisioning and dashboard of compose/grafana.

The dashboard must be a Grafana dashboard document (uid, title, schemaVersion, panels with
an id, a type, a gridPos and at least one PromQL target), every panel's data source must
be the provisioned Prometheus data source, and every metric a query names must be one the
project exports (or RabbitMQ's). Exits 1 on any problem.
"""
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "compose/grafana")
EXPORTED = {
    "http_request_duration_seconds", "orders_placed_total", "orders_finalized_total", "saga_step_seconds",
    "messages_consumed_total", "messages_acked_total", "messages_retried_total", "messages_dead_lettered_total",
    "message_handler_duration_seconds", "outbox_unpublished", "outbox_oldest_unpublished_age_seconds",
    "amqp_publish_confirm_seconds", "amqp_reconnects_total", "db_pool_connections_in_use", "db_pool_waiters",
}
PROMQL_WORDS = {"sum", "by", "rate", "increase", "max", "min", "avg", "histogram_quantile", "without", "on", "le", "count"}


def metric_names(expr):
    names = set()
    for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*[{\[(]?)", re.sub(r'"[^"]*"', '""', expr)):
        if token in PROMQL_WORDS or not ("_" in token):
            continue
        names.add(re.sub(r"_(bucket|count|sum)$", "", token))
    return names


def main():
    problems = []
    sources = yaml.safe_load((ROOT / "provisioning/datasources/prometheus.yml").read_text())
    uids = {source.get("uid") for source in sources.get("datasources", []) if source.get("type") == "prometheus"}
    if not uids:
        problems.append("no Prometheus data source is provisioned")
    providers = yaml.safe_load((ROOT / "provisioning/dashboards/emporium.yml").read_text())
    if not providers.get("providers"):
        problems.append("no dashboard provider is provisioned")
    dashboards = sorted((ROOT / "dashboards").glob("*.json"))
    if not dashboards:
        problems.append("no dashboard JSON")
    for path in dashboards:
        try:
            board = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            problems.append(f"{path.name}: not JSON: {error}")
            continue
        for key in ("uid", "title", "schemaVersion", "panels"):
            if key not in board:
                problems.append(f"{path.name}: missing {key}")
        ids = set()
        for panel in board.get("panels", []):
            label = f"{path.name} panel {panel.get('title', '?')!r}"
            for key in ("id", "type", "title", "gridPos", "targets"):
                if key not in panel:
                    problems.append(f"{label}: missing {key}")
            if panel.get("id") in ids:
                problems.append(f"{label}: duplicate id {panel.get('id')}")
            ids.add(panel.get("id"))
            if (panel.get("datasource") or {}).get("uid") not in uids:
                problems.append(f"{label}: data source is not the provisioned Prometheus")
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                if not expr.strip():
                    problems.append(f"{label}: empty query")
                if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
                    problems.append(f"{label}: unbalanced brackets in {expr}")
                for name in metric_names(expr):
                    if name not in EXPORTED and not name.startswith("rabbitmq_"):
                        problems.append(f"{label}: unknown metric {name}")
    for problem in problems:
        print(f"validate_dashboards: {problem}", file=sys.stderr)
    if not problems:
        print(f"validate_dashboards: {len(dashboards)} dashboard(s) valid")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
