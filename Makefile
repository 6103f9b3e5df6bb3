# Spool developer tasks. `make help` lists them.

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/spoolq/spool/shared/telemetry.Version=$(VERSION)

# Extra flags for `go test`, e.g. make test TESTFLAGS='-run TestClaim -v'
TESTFLAGS ?=

.DEFAULT_GOAL := help

.PHONY: help build run test vet fmt-check lint clean demo

help: ## list the targets
	@echo 'Usage: make <target>'
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_.-]+:.*## / { printf "  %-17s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## build bin/spool-api, bin/spool-worker and bin/spool (the CLI)
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/spool-api ./services/api
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/spool-worker ./services/worker
	$(GO) build -ldflags "$(LDFLAGS) -X main.buildVersion=$(VERSION)" -o bin/spool ./services/cli

run: ## run PostgreSQL, migrations, the API and a worker locally (Ctrl-C stops all)
	@scripts/run.sh

demo: ## with `make run` up: place 200 orders and print the reconciled outcome
	@scripts/demo.sh

# TEST_DATABASE_URL, when set, is used as it is. Otherwise scripts/with-pg.sh
# asks scripts/pg-ensure.sh for a server and stops a throwaway one afterwards.
# examples/customworker is a module of its own (an outside team's code):
# tested too, against the same server.
test: vet ## go vet, then go test -race against a PostgreSQL (the examples' modules included)
	scripts/with-pg.sh sh -c '$(GO) test -race -count=1 $(TESTFLAGS) ./... && $(GO) -C examples/customworker test -race -count=1 $(TESTFLAGS) ./...'

vet: ## go vet ./... (and the examples' modules)
	$(GO) vet ./...
	$(GO) -C examples/customworker vet ./...

fmt-check: ## fail if gofmt would change any Go file
	@files=$$(find . -path ./.dev -prune -o -name '*.go' -exec gofmt -l {} +) || exit 1; \
	if [ -n "$$files" ]; then echo 'gofmt needed (run gofmt -w on these):'; echo "$$files"; exit 1; fi

lint: fmt-check vet ## fmt-check and vet

clean: ## remove build and coverage output (keeps .dev/, the local database)
	rm -rf bin/ coverage.out coverage.html cover.out *.coverprofile

# Other areas add their targets here, e.g. mk/k8s.mk.
-include mk/*.mk
