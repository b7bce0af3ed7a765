# Spendwall: `make run` starts the daemon on its defaults; `make test` runs every test.
SHELL := /bin/bash
SWIFT_BUILD_FLAGS ?=
BIN_DEBUG := .build/debug/spendwall

.PHONY: run setup build build-release test test-swift test-python test-typescript bench format

## Install missing system packages, build, write default config if none, run the daemon.
run: setup build-release
	.build/release/spendwall init
	exec .build/release/spendwall daemon

setup:
	@bash scripts/setup-system.sh

build: setup
	swift build $(SWIFT_BUILD_FLAGS)

build-release: setup
	swift build -c release $(SWIFT_BUILD_FLAGS)

## Every test of the repository: Swift, then the SDKs' suites (and what they start: a browser,
## PostgreSQL).
test: build
	@bash scripts/setup-system.sh --test
	bash scripts/test-all.sh

test-swift: build
	swift test $(SWIFT_BUILD_FLAGS)

bench: setup
	bash bench/run.sh

format:
	swift format --in-place --recursive Sources Tests bench/Sources Package.swift
