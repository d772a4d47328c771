# snowgate — every command a developer or CI needs. The README mirrors this file.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO            ?= go
BIN           := bin
TOOLS         := $(BIN)/tools
BUILD         := build
STATICCHECK_VERSION := v0.8.2
STATICCHECK   := $(TOOLS)/staticcheck
FUNCTIONS     := ingest processor reconciler
# Lambda binaries: linux/arm64, no cgo, no RPC shim (provided.al2023).
LAMBDA_ENV    := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
LAMBDA_FLAGS  := -trimpath -tags lambda.norpc -ldflags='-s -w'
FUZZTIME      ?= 60s

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

.PHONY: build
build: ## build the CLI (bin/2501) and the Lambda bundles (build/<fn>/bootstrap + .zip)
	$(GO) build -o $(BIN)/2501 ./cli
	@for fn in $(FUNCTIONS); do \
	  mkdir -p $(BUILD)/$$fn && \
	  $(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o $(BUILD)/$$fn/bootstrap ./functions/$$fn && \
	  (cd $(BUILD)/$$fn && rm -f ../$$fn.zip && zip -q -X ../$$fn.zip bootstrap) || exit 1; \
	done
	@ls -l $(BUILD)/*.zip

.PHONY: build-local
build-local: ## host-platform builds for make dev: bin/2501, bin/snowgate-dev, build/local/<fn>/bootstrap
	@if [ -f cli/main.go ]; then $(GO) build -o $(BIN)/2501 ./cli; else echo "cli: no main yet, skipped"; fi
	$(GO) build -o $(BIN)/snowgate-dev ./cmd/snowgate-dev
	@for fn in $(FUNCTIONS); do \
	  if [ -f functions/$$fn/main.go ]; then \
	    mkdir -p $(BUILD)/local/$$fn && \
	    CGO_ENABLED=0 $(GO) build -tags lambda.norpc -o $(BUILD)/local/$$fn/bootstrap ./functions/$$fn || exit 1; \
	  else echo "functions/$$fn: no main yet, skipped"; fi; \
	done

.PHONY: dev
dev: build-local ## run the whole system locally (no AWS, no Docker); writes .snowgate/env; Ctrl-C stops it
	$(BIN)/snowgate-dev $(DEV_FLAGS)

.PHONY: demo
demo: ## while make dev runs: create and update records in the ServiceNow simulator and show the outcome
	@$(GO) build -o $(BIN)/snowgate-dev ./cmd/snowgate-dev
	$(BIN)/snowgate-dev demo

.PHONY: test
test: ## run every test with -race: on kumo, then again on moto when moto_server is installed
	$(GO) test -race ./...
	@if command -v moto_server >/dev/null 2>&1; then \
	  echo "--- again on moto (packages that touch AWS)"; \
	  SNOWGATE_TEST_EMULATOR=moto $(GO) test -race ./...; \
	else echo "--- moto_server not installed: skipped the moto run"; fi

.PHONY: lint
lint: $(STATICCHECK) ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	GOBIN=$(abspath $(TOOLS)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN) $(BUILD) .snowgate
