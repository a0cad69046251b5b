# Atrium — the two commands a newcomer needs are `make run` and `make test`.
# Everything else is here for developers; `make help` lists it.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/atrium-suite/atrium/shared/buildinfo.Version=$(VERSION)
PKGS     := github.com/atrium-suite/atrium/...
DATA_DIR ?= ./data
CONFIG   ?= $(wildcard atrium.toml)

.PHONY: help build run test test-short lint fuzz bench deps tidy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/atrium
	@scripts/deps.sh build
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/atrium ./cmd/atrium

run: build ## run the whole suite on this machine (SQLite, ./data)
	@# Connect builds Python environments with uv: scripts/pytools.sh provides it.
	PATH="$$(scripts/pytools.sh)/bin:$$PATH" ./bin/atrium up --data-dir $(DATA_DIR) $(if $(CONFIG),--config $(CONFIG))

test: ## everything CI checks: lint, unit, store suite on SQLite and PostgreSQL, e2e
	scripts/test.sh

test-short: ## unit tests only, no external services
	$(GO) test -short $(PKGS)

lint: ## gofmt and go vet
	@scripts/lint.sh

fuzz: ## run every fuzz target for FUZZTIME each (default 20s)
	scripts/fuzz.sh

bench: ## benchmarks, printed as ratios against a baseline measured in the same run
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	scripts/bench/pm.sh
	scripts/bench/connect.sh

deps: ## install what the tests need (PostgreSQL); idempotent
	scripts/deps.sh test

tidy: ## go mod tidy in every module
	@for m in $$(sed -n 's#^\t\./##p' go.work); do (cd $$m && $(GO) mod tidy) || exit 1; done

clean: ## remove build output (not the data dir)
	rm -rf bin
