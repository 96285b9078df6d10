# vault-csi-provider — run `make help` for the targets.
SHELL := /usr/bin/env bash
comma := ,
.DEFAULT_GOAL := help

VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN       ?= bin/vault-csi-provider
FUZZTIME  ?= 10000x
TOOLS     ?= $(HOME)/.cache/vcp-test/tools
GOLANGCI_LINT_VERSION ?= v2.6.2
GOLANGCI_LINT := $(TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION)

IMAGE     ?= localhost/vault-csi-provider:$(VERSION)
IMAGE_TAR ?= bin/vault-csi-provider-image.tar
IMAGE_INDEX ?= bin/vault-csi-provider-oci.tar
PLATFORMS ?= linux/amd64,linux/arm64,linux/s390x,linux/ppc64le
LDFLAGS   := -s -w -X github.com/vaultcsi/vault-csi-provider/app.Version=$(VERSION)

.PHONY: help build test test-deps unit integration fuzz lint clean bench manifests image cluster-up cluster-down e2e e2e-kind e2e-upstream demo

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the provider binary into bin/ (static)
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vault-csi-provider

IMAGE_LAYOUT := -user 65532:65532 -nonroot-passwd -entrypoint /vault-csi-provider \
  -file /etc/ssl/certs/ca-certificates.crt=/etc/ssl/certs/ca-certificates.crt

image: build ## the provider image, laid out as the Dockerfile's, without a Docker engine: IMAGE_TAR for this machine, IMAGE_INDEX an OCI image index of every PLATFORMS (binaries in bin/linux_ARCH/)
	test/tools/build.sh image-tool
	$(HOME)/.cache/vcp-test/bin/image -tag $(IMAGE) -out $(IMAGE_TAR) $(IMAGE_LAYOUT) -file $(BIN)=/vault-csi-provider:0755
ifneq ($(PLATFORMS),)
	for p in $(subst $(comma), ,$(PLATFORMS)); do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$${p#linux/} go build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux_$${p#linux/}/vault-csi-provider ./cmd/vault-csi-provider || exit 1; \
	done
	$(HOME)/.cache/vcp-test/bin/image -tag $(IMAGE) -out $(IMAGE_INDEX) -platforms $(PLATFORMS) $(IMAGE_LAYOUT) \
	  -file 'bin/linux_{arch}/vault-csi-provider=/vault-csi-provider:0755'
endif

cluster-up: ## start the local one-node cluster (kubelet, containerd, CSI driver, our chart and image, Vault, Postgres)
	test/cluster/cluster.sh up

cluster-down: ## stop the local cluster and undo what it changed on this machine
	test/cluster/cluster.sh down

e2e: cluster-up ## the bats suite on the local cluster
	source <(test/cluster/cluster.sh env) && bats --timing test/bats/

e2e-kind: build ## the same bats suite on a new 3-node kind cluster with its own Docker engine, then delete it all (KEEP=1 keeps it)
	test/cluster/kind.sh up
	source <(test/cluster/kind.sh env) && bats --timing test/bats/; status=$$?; \
	  if [ -z "$(KEEP)" ]; then test/cluster/kind.sh down || status=1; fi; exit $$status

e2e-upstream: build ## the secrets-store-csi-driver's own vault.bats and openbao.bats (from its module) against our chart on a new kind cluster, then delete it (KEEP=1 keeps it)
	VCP_KIND_PROFILE=upstream test/cluster/kind.sh up
	source <(test/cluster/kind.sh env) && test/upstream/run.sh; status=$$?; \
	  if [ -z "$(KEEP)" ]; then test/cluster/kind.sh down || status=1; fi; exit $$status

demo: cluster-up ## a secret from Vault appears in a pod on the local cluster
	source <(test/cluster/cluster.sh env) && test/cluster/demo.sh

test: test-deps image ## unit + integration tests (real Vault, etcd, kube-apiserver; the image index's binaries under qemu-user) with -race, then a short fuzz run
	go test -race -count=1 ./...
	$(MAKE) fuzz

test-deps: ## build Vault and kube-apiserver, install etcd (cached in ~/.cache/vcp-test by version)
	test/tools/build.sh

unit: ## unit tests only (no real components needed)
	go test -race -count=1 $$(go list ./... | grep -v /test/integration)

integration: test-deps ## integration tests only
	go test -race -count=1 -v ./test/integration/

fuzz: ## run each fuzz target (parameters and objects, paths, jsonPath and directories, token JSON) for FUZZTIME inputs (default 10000x; a count, not a duration, so no timer can cut a worker off)
	go test -run='^$$' -fuzz='^FuzzParseRequest$$' -fuzztime=$(FUZZTIME) ./provider/spc/
	go test -run='^$$' -fuzz='^FuzzPaths$$' -fuzztime=$(FUZZTIME) ./provider/spc/
	go test -run='^$$' -fuzz='^FuzzSelectors$$' -fuzztime=$(FUZZTIME) ./provider/render/
	go test -run='^$$' -fuzz='^FuzzParseTokens$$' -fuzztime=$(FUZZTIME) ./auth/

lint: $(GOLANGCI_LINT) ## gofmt, go vet, golangci-lint and shellcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(GOLANGCI_LINT) run ./...
	cd test/tools/image && go vet ./...
	cd test/tools/csi && go vet ./registrar/ ./livenessprobe/
	shellcheck -x .ci/run test/upstream/*.sh test/tools/build.sh test/tools/kind-images.sh test/cluster/*.sh test/bats/*.bash test/bats/*.bats

$(GOLANGCI_LINT):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(TOOLS)/golangci-lint $@

clean: ## remove build output
	rm -rf bin/

bench: test-deps ## benchmark the provider against real Vault, apiserver and Postgres; prints a table
	go run ./test/bench $(BENCH_ARGS)

manifests: test-deps ## regenerate manifests/vault-csi-provider.yaml from the chart's defaults
	UPDATE_MANIFESTS=1 go test -count=1 -run TestManifestsMatchChart ./test/integration/
