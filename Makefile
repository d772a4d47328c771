# snowgate — every command a developer or CI needs. The README mirrors this file.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO            ?= go
BIN           := bin
TOOLS         := $(BIN)/tools
BUILD         := build
STATICCHECK_VERSION := v0.8.2
STATICCHECK   := $(TOOLS)/staticcheck
# AWS Lambda runtime interface emulator, for make bench's cold starts (a tool, not a module dependency).
RIE_VERSION   := v0.0.0-20261030222936-bef5c4ba774d
RIE           := $(TOOLS)/aws-lambda-rie
FUNCTIONS     := ingest processor reconciler writer
# Lambda binaries: linux/arm64, no cgo, no RPC shim (provided.al2023).
LAMBDA_ENV    := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
LAMBDA_FLAGS  := -trimpath -tags lambda.norpc -ldflags='-s -w'
FUZZTIME      ?= 60s
# 2501 version reports the commit it was built from: stamp it even where
# GOFLAGS turns VCS stamping off (-buildvcs=auto skips it outside a checkout).
CLI_FLAGS     := -buildvcs=auto
# make test's fuzz budget is a count, not a duration: Go 1.26's fuzz coordinator
# can report a spurious "context deadline exceeded" when a duration runs out
# while a worker is busy (golang/go#75804, fixed in Go 1.27), which a loaded
# machine hits often. A count has no deadline to race.
FUZZ_QUICK    := 20000x
# CDK (infra/, its own Go module). The CLI is pinned by infra/package-lock.json
# and installed under infra/node_modules. No telemetry, version check, notices
# or instance-metadata lookups: synth works offline and without credentials.
STACK         ?= $(or $(SNOWGATE_STACK),snowgate)
CDK_ENV       := CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=true AWS_EC2_METADATA_DISABLED=true \
                 JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
CDK_FLAGS     := --no-version-reporting --no-notices -c stack=$(STACK)
CDK           := infra/node_modules/.bin/cdk
CDKLOCAL      := infra/node_modules/.bin/cdklocal
APPROVAL      ?= broadening
# LocalStack (Docker): see localstack/docker-compose.yml.
LOCALSTACK_URL ?= http://localhost.localstack.cloud:4566
LOCALSTACK_ENV := AWS_ENDPOINT_URL=$(LOCALSTACK_URL) AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
                  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
COMPOSE       ?= docker compose
# What receives the webhooks in LocalStack: function-url (a Lambda function URL, on LocalStack's
# free plan) or http-api (API Gateway V2, which LocalStack has only on its paid Base plan).
LOCALSTACK_FRONT ?= function-url

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

.PHONY: build
build: ## build the CLI (bin/2501) and the Lambda bundles (build/<fn>/bootstrap + .zip)
	$(GO) build $(CLI_FLAGS) -o $(BIN)/2501 ./cli/2501
	@for fn in $(FUNCTIONS); do \
	  mkdir -p $(BUILD)/$$fn && \
	  $(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o $(BUILD)/$$fn/bootstrap ./functions/$$fn && \
	  (cd $(BUILD)/$$fn && rm -f ../$$fn.zip && zip -q -X ../$$fn.zip bootstrap) || exit 1; \
	done
	@ls -l $(BUILD)/*.zip

.PHONY: build-local
build-local: ## host-platform builds for make dev: bin/2501, bin/snowgate-dev, build/local/<fn>/bootstrap
	$(GO) build $(CLI_FLAGS) -o $(BIN)/2501 ./cli/2501
	$(GO) build -o $(BIN)/snowgate-dev ./cmd/snowgate-dev
	@for fn in $(FUNCTIONS); do \
	  mkdir -p $(BUILD)/local/$$fn && \
	  CGO_ENABLED=0 $(GO) build -tags lambda.norpc -o $(BUILD)/local/$$fn/bootstrap ./functions/$$fn || exit 1; \
	done

.PHONY: dev
dev: build-local ## run the whole system locally (no AWS, no Docker) with a demo engine (DEV_FLAGS=-engine=off: your own); writes .snowgate/env; Ctrl-C stops it
	$(BIN)/snowgate-dev $(DEV_FLAGS)

.PHONY: demo
demo: ## while make dev runs: change records in the ServiceNow simulator; check the decisions and the results written back
	@$(GO) build -o $(BIN)/snowgate-dev ./cmd/snowgate-dev
	$(BIN)/snowgate-dev demo

.PHONY: test
test: ## run every test with -race: on kumo, then again on moto when moto_server is installed
	$(GO) test -race ./...
	@if command -v moto_server >/dev/null 2>&1; then \
	  echo "--- again on moto (packages that touch AWS)"; \
	  SNOWGATE_TEST_EMULATOR=moto $(GO) test -race ./...; \
	else echo "--- moto_server not installed: skipped the moto run"; fi
	@echo "--- infra (CDK app, its own module): template assertions, cfn-lint, data stack on moto"
	@command -v cfn-lint >/dev/null 2>&1 || echo "--- cfn-lint not installed (pip install cfn-lint): templates will not be linted"
	cd infra && JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 $(GO) test ./...
	@echo "--- ingest and processor fuzzers, $(FUZZ_QUICK) inputs each (make fuzz runs them longer)"
	$(GO) test -run='^$$' -fuzz=FuzzHandle -fuzztime=$(FUZZ_QUICK) ./internal/ingest/
	$(GO) test -run='^$$' -fuzz=FuzzProcess -fuzztime=$(FUZZ_QUICK) ./internal/pipeline/

.PHONY: test-pdi
test-pdi: ## opt-in checks against a real ServiceNow instance (SNOWGATE_PDI_*, see docs/testing.md); writes fixtures
	@test -n "$$SNOWGATE_PDI_URL" -a -n "$$SNOWGATE_PDI_USER" -a -n "$$SNOWGATE_PDI_PASSWORD" || { echo "set SNOWGATE_PDI_URL, SNOWGATE_PDI_USER and SNOWGATE_PDI_PASSWORD (see docs/testing.md, Against a real instance)"; exit 1; }
	$(GO) test -count=1 -v -timeout 30m -run '^TestPDI$$' ./e2e/pdi/

.PHONY: bench
bench: $(RIE) ## measure ingest, webhook-to-dispatch latency, processor, reconciler, package sizes and cold starts next to their baselines (~10 min); tables in docs/performance.md and build/bench.md
	$(GO) build -o $(BIN)/snowgate-bench ./cmd/snowgate-bench
	$(BIN)/snowgate-bench -rie $(RIE)

.PHONY: bench-quick
bench-quick: $(RIE) ## make bench with shorter runs (~2 min)
	$(GO) build -o $(BIN)/snowgate-bench ./cmd/snowgate-bench
	$(BIN)/snowgate-bench -quick -rie $(RIE)

$(RIE):
	GOBIN=$(abspath $(TOOLS)) $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

.PHONY: fuzz
fuzz: ## fuzz the ingest handler and the processor for FUZZTIME each (default 60s): never panics, never accepts without a valid secret, never fails a batch
	$(GO) test -run='^$$' -fuzz=FuzzHandle -fuzztime=$(FUZZTIME) ./internal/ingest/
	$(GO) test -run='^$$' -fuzz=FuzzProcess -fuzztime=$(FUZZTIME) ./internal/pipeline/

.PHONY: lint
lint: $(STATICCHECK) ## gofmt, go mod tidy (no diff), go vet and staticcheck, on the root module and on infra/
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo "go mod tidy would change go.mod/go.sum (run: go mod tidy):"; $(GO) mod tidy -diff; exit 1; }
	@cd infra && $(GO) mod tidy -diff >/dev/null || { echo "go mod tidy would change infra/go.mod/go.sum (run: cd infra && go mod tidy):"; $(GO) mod tidy -diff; exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd infra && $(GO) vet ./... && $(abspath $(STATICCHECK)) ./...

$(STATICCHECK):
	GOBIN=$(abspath $(TOOLS)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: docs
docs: ## regenerate docs/cli.md, the CLI reference, from the command tree (a test fails when it is stale)
	$(GO) run ./cli/2501 docs cli-reference > docs/cli.md.tmp && mv docs/cli.md.tmp docs/cli.md

.PHONY: synth
synth: build $(CDK) ## write the CloudFormation templates to infra/cdk.out (no AWS access needed)
	cd infra && $(CDK_ENV) ./node_modules/.bin/cdk synth $(CDK_FLAGS) --quiet
	@ls infra/cdk.out/*.template.json

.PHONY: deploy
deploy: build $(CDK) ## deploy both stacks to the AWS account in the environment; outputs in .snowgate/outputs.json
	@mkdir -p .snowgate
	cd infra && $(CDK_ENV) ./node_modules/.bin/cdk deploy --all $(CDK_FLAGS) --require-approval $(APPROVAL) \
	  --outputs-file ../.snowgate/outputs.json

.PHONY: destroy
destroy: build $(CDK) ## remove the service stack; ALL=1 also the data stack (its tables are retained)
	cd infra && $(CDK_ENV) ./node_modules/.bin/cdk destroy $(CDK_FLAGS) $(STACK) $(if $(ALL),$(STACK)-data)

$(CDK) $(CDKLOCAL): infra/package.json infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund
	@touch $(CDK) $(CDKLOCAL)

.PHONY: localstack-up
localstack-up: ## start LocalStack in Docker (needs LOCALSTACK_AUTH_TOKEN)
	@test -n "$$LOCALSTACK_AUTH_TOKEN" || { echo "LOCALSTACK_AUTH_TOKEN is not set: LocalStack images need one (see docs/deploying.md, LocalStack)"; exit 1; }
	$(COMPOSE) -f localstack/docker-compose.yml up -d --wait

.PHONY: localstack-deploy
localstack-deploy: build $(CDKLOCAL) ## deploy both stacks into LocalStack with cdklocal (LOCALSTACK_FRONT=function-url|http-api); writes .snowgate/localstack.env
	@mkdir -p .snowgate
	cd infra && $(CDK_ENV) $(LOCALSTACK_ENV) ./node_modules/.bin/cdklocal bootstrap $(CDK_FLAGS)
	cd infra && $(CDK_ENV) $(LOCALSTACK_ENV) ./node_modules/.bin/cdklocal deploy --all $(CDK_FLAGS) -c ingestFront=$(LOCALSTACK_FRONT) \
	  --require-approval never --outputs-file ../.snowgate/localstack-outputs.json
	cd infra && $(GO) run ./cmd/stackenv -stack $(STACK) $(LOCALSTACK_ENV) SNOWGATE_TEST_EMULATOR=endpoint \
	  < ../.snowgate/localstack-outputs.json > ../.snowgate/localstack.env
	@echo "wrote .snowgate/localstack.env: set -a; . .snowgate/localstack.env; set +a"

.PHONY: localstack-down
localstack-down: ## stop LocalStack and drop its state
	$(COMPOSE) -f localstack/docker-compose.yml down -v

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN) $(BUILD) .snowgate
