# Emporium — the two commands are `make run` and `make test`; both set everything up.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := source scripts/env.sh

.PHONY: help services stop build migrate run test

help:
	@echo "make run      install what is missing, start PostgreSQL + RabbitMQ, migrate, build, start the API on :8080"
	@echo "make test     the same setup, then the whole test suite"
	@echo "make services start (or find running) PostgreSQL and RabbitMQ on loopback, data under .local/"
	@echo "make migrate  apply pending sql/ migrations"
	@echo "make stop     stop the processes started by make run, PostgreSQL and RabbitMQ"

services:
	@bash scripts/services.sh

build: services
	swift build

migrate: build
	@$(ENV) && .build/debug/emporium migrate

run: services
	@bash scripts/run.sh

test: services
	@$(ENV) && swift test

stop:
	@bash scripts/stop.sh
