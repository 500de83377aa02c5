# Emporium — the two commands are `make run` and `make test`; both set everything up.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := source scripts/env.sh

# Suites whose tests each start the API and workers as processes, or send thousands of
# requests (the contract), so they run one test at a time (see `make test`).
PROCESS_SUITES := ScalingTests|ObservabilityTests|MetricsTests|NotificationEmailTests|MoneyReconciliationTests|PoisonIsolationTests|BatchTests|RegistrationBurstTests|ContractTests|StripeReconciliationTests

# How many tests of the in-process phase of `make test` run at once. Unbounded, all ~150
# start together (each creates and migrates a database, many boot an API and four workers),
# and on a 2-core machine the herd starved PostgreSQL's own connection handshakes past 5 s.
TEST_PARALLEL_WIDTH ?= 8

.PHONY: help services stop build migrate run test lint format walkthrough bench soak browser-test

help:
	@echo "make run      install what is missing, start PostgreSQL + RabbitMQ, migrate, build, start the API on :8080"
	@echo "             and the workers (replicas: make run PAYMENT_WORKERS=4, also STOCK_/ORDER_/NOTIFICATION_WORKERS)"
	@echo "make test     the same setup, then the whole test suite"
	@echo "make services start (or find running) PostgreSQL and RabbitMQ on loopback, data under .local/"
	@echo "make migrate  apply pending sql/ migrations"
	@echo "make stop     stop the processes started by make run, PostgreSQL and RabbitMQ"
	@echo "make walkthrough  the README checkout walkthrough against a running make run"
	@echo "make browser-test the operator console in headless Chromium (part of make test); screenshots in .build/test-output/browser"
	@echo "make bench    release build, floors (pgbench order and saga, raw rabbitmq-c), Emporium's figures, a peer shop; writes BENCHMARKS.md (~20 min)"
	@echo "make lint     swift-format --strict over Sources and Tests (make format rewrites)"
	@echo "make soak     5-minute PostgreSQL and RabbitMQ outages under load, and 1,000,000 confirmed publishes' memory (~20 min)"

services:
	@bash scripts/services.sh

build: services
	swift build

migrate: build
	@$(ENV) && .build/debug/emporium migrate

# Replicas per worker for `make run`, e.g. `make run PAYMENT_WORKERS=4`.
STOCK_WORKERS ?= 1
PAYMENT_WORKERS ?= 1
ORDER_WORKERS ?= 1
NOTIFICATION_WORKERS ?= 1

run: services
	@STOCK_WORKERS=$(STOCK_WORKERS) PAYMENT_WORKERS=$(PAYMENT_WORKERS) ORDER_WORKERS=$(ORDER_WORKERS) \
	  NOTIFICATION_WORKERS=$(NOTIFICATION_WORKERS) bash scripts/run.sh

# The suite, then the README's own walkthrough against `make run` (the app processes are
# stopped afterwards; the servers stay up).
test: services
	@# The quick static checks first, so a style or contract slip fails in seconds.
	@$(MAKE) --no-print-directory lint
	@bash scripts/lint-openapi.sh
	@bash scripts/check-stores.sh
	@# One build, with the tests: a plain `swift build` before or after would rebuild the tree.
	@$(ENV) && swift build --build-tests && SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$(TEST_PARALLEL_WIDTH) \
	  bash scripts/swift-test.sh --skip-build --skip OutageTests --skip "$(PROCESS_SUITES)"
	@# The suites that start the real executables (up to twelve processes each, 500 orders) run
	@# one test at a time, so they do not starve each other or the rest on a 2-core machine.
	@$(ENV) && bash scripts/swift-test.sh --skip-build --no-parallel --filter "$(PROCESS_SUITES)"
	@# The outage drills restart, stop and freeze PostgreSQL and RabbitMQ, so they run alone, one
	@# at a time, after the rest (the long ones take each server away for 2 minutes here; make soak: 5).
	@$(ENV) && bash scripts/swift-test.sh --skip-build --no-parallel --filter OutageTests
	@bash scripts/validate-deploy.sh
	@bash scripts/check-readme.sh
	@# The API fuzzed from its own OpenAPI document (schemathesis, default checks, signed in).
	@bash scripts/schemathesis.sh
	@# Then the README walkthrough and a few seconds of `emporium bench` against `make run`.
	@EMPORIUM_SKIP_BUILD=1 bash scripts/run.sh && bash scripts/walkthrough.sh && bash scripts/bench-smoke.sh; status=$$?; bash scripts/stop.sh --apps-only; exit $$status
	@# The same walkthrough paying through Stripe (localstripe), with automatic and manual capture.
	@bash scripts/walkthrough-stripe.sh; status=$$?; bash scripts/stop.sh --apps-only; exit $$status
	@# The operator console in headless Chromium against a stack of its own.
	@bash scripts/browser-tests.sh

stop:
	@bash scripts/stop.sh

# Formatting and style (.swift-format, with the toolchain's swift-format): `make lint`
# checks, `make format` rewrites.
lint:
	@$(ENV) && swift format lint --strict --recursive --parallel Sources Tests Package.swift && echo "lint: swift-format finds nothing to change"

format:
	@$(ENV) && swift format format --in-place --recursive --parallel Sources Tests Package.swift

walkthrough:
	@bash scripts/walkthrough.sh

browser-test: services
	@$(ENV) && swift build && bash scripts/browser-tests.sh

bench:
	@bash scripts/bench.sh $(BENCH_ARGS)

# The long versions of the outage drills (each server away 5 minutes under load) and the
# publisher's resident memory over 1,000,000 confirmed messages.
soak: services
	@$(ENV) && swift build --build-tests && OUTAGE_SECONDS=$${OUTAGE_SECONDS:-300} bash scripts/swift-test.sh --skip-build --no-parallel --filter LongOutageTests
	@$(ENV) && "$$(swift build --show-bin-path)/emporium" soak publisher --messages $${SOAK_MESSAGES:-1000000}
