# Pharos. `make` alone lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Tools are cached per user, outside the repository, like the Kubernetes
# binaries of hack/kube-bins/ensure.sh.
TOOLS_BIN ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/pharos/tools/bin
CONTROLLER_TOOLS_VERSION := v0.23.0
CONTROLLER_GEN ?= $(TOOLS_BIN)/controller-gen
# A go-installed helm prints only "v3.22" as its version, so a stamp file
# next to it records the exact version that `make tools` installed (a helm
# installed by hand is stamped when its module version, from
# `go version -m`, is HELM_VERSION).
HELM_VERSION := v3.22.0
HELM ?= $(TOOLS_BIN)/helm
HELM_STAMP := $(TOOLS_BIN)/.helm-$(HELM_VERSION)
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT ?= $(TOOLS_BIN)/golangci-lint
# actionlint checks .github/workflows (the release workflow, which cannot
# run here).
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT ?= $(TOOLS_BIN)/actionlint
CHART := charts/pharos

IMG ?= ghcr.io/pharos-lb/pharos:dev
# make image-archive's OCI archive (buildah, no Docker), whose image is IMG,
# for IMAGE_ARCH (GOARCH; empty: this machine's).
IMAGE_ARCHIVE ?= _output/image/pharos.tar
IMAGE_ARCH ?=
FUZZTIME ?= 60s
# The smoke fuzzing of `make test`: a count, not a duration, because Go's
# fuzzer can fail a time-bounded run with "context deadline exceeded" when
# the time runs out while it minimises a new input (seen in CI).
FUZZ_SMOKE ?= 150000x
FUZZERS := internal/config:FuzzParseRange internal/config:FuzzBuild internal/election:FuzzElect internal/layer2:FuzzDecideARP internal/layer2:FuzzDecideNDP internal/admit:FuzzValidateFiles internal/migrate:FuzzRead internal/bgpannounce:FuzzTranslatePeer internal/bgpannounce:FuzzTranslateRoute internal/heartbeat:FuzzDecode
BENCH_SUMMARY := _output/bench/summary.json

# $(call fuzz,DURATION) runs each fuzzer (package:Fuzzer) for DURATION.
define fuzz
	for pf in $(FUZZERS); do go test ./$${pf%%:*}/ -run='^$$' -fuzz="^$${pf##*:}\$$" -fuzztime=$(1); done
endef

# Sets the shell variable assets to the directory with kube-apiserver and etcd
# (built on first use); a failure stops the recipe, unlike VAR=$(...) cmd.
kube_assets = assets="$$(hack/kube-bins/ensure.sh kube-apiserver)"

.PHONY: help
help: ## List the targets
	@echo "Usage: make TARGET [VAR=value]"
	@echo
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-18s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: IMG=$(IMG) FUZZTIME=$(FUZZTIME) TOOLS_BIN=$(TOOLS_BIN) CONTROLLER_TOOLS_VERSION=$(CONTROLLER_TOOLS_VERSION) HELM_VERSION=$(HELM_VERSION)"

.PHONY: tools
tools: ## Install controller-gen (CONTROLLER_TOOLS_VERSION), helm (HELM_VERSION), golangci-lint (GOLANGCI_LINT_VERSION) and actionlint (ACTIONLINT_VERSION) into TOOLS_BIN unless there
	@if "$(ACTIONLINT)" -version 2>/dev/null | sed -n 1p | grep -xF '$(ACTIONLINT_VERSION)' >/dev/null; then \
	  echo "actionlint $(ACTIONLINT_VERSION): $(ACTIONLINT)"; \
	else \
	  echo "installing actionlint $(ACTIONLINT_VERSION) into $(TOOLS_BIN)"; \
	  mkdir -p "$(TOOLS_BIN)"; rm -f "$(TOOLS_BIN)/actionlint"; \
	  GOFLAGS=-mod=mod GOBIN="$(TOOLS_BIN)" go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION); \
	fi
	@if "$(GOLANGCI_LINT)" version 2>/dev/null | grep -F 'version $(GOLANGCI_LINT_VERSION:v%=%) ' >/dev/null; then \
	  echo "golangci-lint $(GOLANGCI_LINT_VERSION): $(GOLANGCI_LINT)"; \
	else \
	  echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into $(TOOLS_BIN)"; \
	  mkdir -p "$(TOOLS_BIN)"; rm -f "$(TOOLS_BIN)/golangci-lint"; \
	  GOBIN="$(TOOLS_BIN)" go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi
	@if "$(CONTROLLER_GEN)" --version 2>/dev/null | grep -xF 'Version: $(CONTROLLER_TOOLS_VERSION)' >/dev/null; then \
	  echo "controller-gen $(CONTROLLER_TOOLS_VERSION): $(CONTROLLER_GEN)"; \
	else \
	  echo "installing controller-gen $(CONTROLLER_TOOLS_VERSION) into $(TOOLS_BIN)"; \
	  mkdir -p "$(TOOLS_BIN)"; rm -f "$(TOOLS_BIN)/controller-gen"; \
	  GOBIN="$(TOOLS_BIN)" go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION); \
	  "$(CONTROLLER_GEN)" --version | grep -xF 'Version: $(CONTROLLER_TOOLS_VERSION)' >/dev/null || \
	    { echo "$(CONTROLLER_GEN) is not controller-gen $(CONTROLLER_TOOLS_VERSION); unset CONTROLLER_GEN or point it at that version" >&2; exit 1; }; \
	fi
	@if [ -x "$(TOOLS_BIN)/helm" ] && [ ! -f "$(HELM_STAMP)" ] && \
	    go version -m "$(TOOLS_BIN)/helm" 2>/dev/null | grep -E '^\s+mod\s+helm\.sh/helm/v3\s+$(HELM_VERSION)\s' >/dev/null; then \
	  touch "$(HELM_STAMP)"; \
	fi
	@if [ -x "$(TOOLS_BIN)/helm" ] && [ -f "$(HELM_STAMP)" ]; then \
	  echo "helm $(HELM_VERSION): $(TOOLS_BIN)/helm"; \
	else \
	  echo "installing helm $(HELM_VERSION) into $(TOOLS_BIN)"; \
	  mkdir -p "$(TOOLS_BIN)"; rm -f "$(TOOLS_BIN)/helm" "$(TOOLS_BIN)"/.helm-v*; \
	  GOBIN="$(TOOLS_BIN)" go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); \
	  touch "$(HELM_STAMP)"; \
	fi

.PHONY: generate
generate: tools ## Regenerate deep-copy code, the CRDs (config/crd/bases, copied to charts/pharos/crds) and the RBAC roles (config/rbac)
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=pharos-controller paths=./controller/... output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=pharos-speaker paths=./speaker/... output:rbac:artifacts:config=config/rbac/speaker
	mkdir -p $(CHART)/crds
	rm -f $(CHART)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/

# The programs the tests and the lab run (etcd, iproute2, nftables, ...),
# checked before anything long is built: as root on Debian or Ubuntu,
# hack/host-deps.sh installs the missing ones (hack/ci-deps.sh), elsewhere
# it stops and names them. deps-kube, deps-test and deps-image need less
# than deps.
.PHONY: deps deps-kube deps-test deps-image
deps: ## Check (as root on Debian/Ubuntu, install) the system packages the lab, demo and e2e need
	@hack/host-deps.sh lab
deps-kube:
	@hack/host-deps.sh kube
deps-test:
	@hack/host-deps.sh test
deps-image:
	@hack/host-deps.sh image

.PHONY: build
build: ## Build bin/controller, bin/speaker and bin/kubectl-pharos (the kubectl plugin)
	CGO_ENABLED=0 go build -trimpath -o bin/ ./controller ./speaker ./kubectl-pharos

.PHONY: kube-bins
kube-bins: deps-kube ## Build (once; cached by version) the pinned Kubernetes binaries and print their directory
	hack/kube-bins/ensure.sh

.PHONY: test
test: deps-test tools ## Check generated files, run all tests against a real kube-apiserver and etcd, smoke-fuzz
	hack/verify-generated.sh
	$(kube_assets); KUBEBUILDER_ASSETS="$$assets" HELM="$(HELM)" go test -count=1 ./...
	$(call fuzz,$(FUZZ_SMOKE))

.PHONY: test-unit
test-unit: ## Run the tests that need no kube-apiserver
	go test -count=1 ./internal/... ./hack/benchmerge/...

.PHONY: lint
lint: helm-lint ## Check formatting (gofmt), go.mod tidiness, go vet, golangci-lint (.golangci.yml), helm lint and the GitHub workflows (actionlint)
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
	  echo "these files need gofmt -w:" >&2; echo "$$unformatted" >&2; exit 1; \
	fi
	@go mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy" >&2; exit 1; }
	go vet ./...
	go vet -tags e2e ./test/...
	$(GOLANGCI_LINT) run ./...
	$(GOLANGCI_LINT) run --build-tags e2e ./test/...
	$(ACTIONLINT) .github/workflows/*.yml

.PHONY: helm-lint
helm-lint: tools ## Lint the Helm chart charts/pharos (defaults, and --strict with pools and monitoring)
	$(HELM) lint $(CHART)
	$(HELM) lint --strict $(CHART) -f test/chart/testdata/full-values.yaml

.PHONY: fuzz
fuzz: ## Fuzz the config parser for FUZZTIME per fuzzer
	$(call fuzz,$(FUZZTIME))

# The benchmarks share one summary file; never run them side by side.
.NOTPARALLEL: bench

.PHONY: bench
bench: bench-alloc bench-controller bench-lab bench-l2 bench-bgp bench-dataplane bench-plugin bench-outage bench-partition bench-helm bench-invalid-config bench-arp-flood bench-image ## Run all benchmarks and print _output/bench/summary.json
	@echo "== $(BENCH_SUMMARY)"
	@cat $(BENCH_SUMMARY)

.PHONY: bench-alloc
bench-alloc: ## Benchmark the allocator; merges its figures into _output/bench/summary.json
	go test -run='^$$' -bench=. -benchmem -count=1 ./internal/allocator/ | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require alloc_ns_per_op_v6_64,alloc_ns_per_op_v4_12

.PHONY: bench-controller
bench-controller: deps-kube build ## Benchmark the controller against a real kube-apiserver; merges its figures into _output/bench/summary.json
	$(kube_assets); KUBEBUILDER_ASSETS="$$assets" go run ./test/bench/controller | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require assign_backlog_5000_s,apiserver_status_ceiling_5000_s,restart_resync_5000_s,restart_ip_changes_5000,controller_rss_mib_10000

LAB_FLAGS ?=

.PHONY: lab
lab: deps build ## Bring up the lab: a 3-node cluster in network namespaces with Pharos (root)
	go run ./test/lab up $(LAB_FLAGS)

.PHONY: lab-down
lab-down: ## Remove every namespace, process and file of the lab (root)
	go run ./test/lab down $(LAB_FLAGS)

.PHONY: lab-status
lab-status: ## Show the lab's components, nodes and Services
	go run ./test/lab status $(LAB_FLAGS)

.PHONY: demo
demo: deps build ## The lab plus the my-nginx tutorial: a LoadBalancer Service with its EXTERNAL-IP (root)
	go run ./test/lab demo $(LAB_FLAGS)

.PHONY: e2e
e2e: deps deps-image tools ## End-to-end tests in fresh labs, then the Helm chart in its own lab, run from the image that hack/image builds (root; tears the labs down)
	go test -tags e2e -count=1 -timeout 30m -v ./test/e2e/
	go test -tags e2e -count=1 -timeout 15m -v ./test/e2e/ipv6first/
	go test -tags e2e -count=1 -timeout 15m -v ./test/e2e/bgp/
	go test -tags e2e -count=1 -timeout 15m -v ./test/e2e/forwarding/
	HELM="$(HELM)" go test -tags e2e -count=1 -timeout 20m -v ./test/e2e/helm/

.PHONY: bench-lab
bench-lab: deps build ## Time a warm lab up (binaries cached); merges lab_up_warm_s
	go run ./test/bench/lab | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require lab_up_warm_s,demo_external_ip_warm_s

.PHONY: bench-l2
bench-l2: deps ## Layer-2 failover in the lab (root, ~25 min): crash and NIC-down p50/p95, rolling restart, 10 min of stress without a false failover, speaker RSS/CPU at 1,000 IPs against the pre-heartbeat settings (BENCH_L2_FLAGS="-stress=2m" to shorten)
	go run ./test/bench/l2 $(BENCH_L2_FLAGS) | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require l2_failover_crash_p50_ms,l2_failover_crash_p95_ms,l2_failover_nic_down_p95_ms,l2_graceful_failed_requests,speaker_rss_mib_1000,speaker_cpu_pct_idle_1000,speaker_cpu_pct_idle_1000_baseline

.PHONY: bench-bgp
bench-bgp: deps ## BGP against a real FRR in the lab (root): BFD withdrawal p50/p95, failed requests per crash, 10,000 prefixes vs FRR itself, speaker RSS
	go run ./test/bench/bgp | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require bgp_bfd_withdraw_p95_ms,bgp_failover_failed_requests_p95,bgp_advertise_10000_s,bgp_frr_advertise_10000_s,bgp_advertise_ratio_to_frr,speaker_rss_mib_bgp_10000

.PHONY: bench-dataplane
bench-dataplane: deps ## The direct forwarding path in the lab (root): throughput vs the pod and vs kube-proxy, 1,000-frontend resync, failed requests when a backend's node dies
	go run ./test/bench/dataplane | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require dnat_rps_ratio,dnat_rps_ratio_vs_kube_proxy,dnat_new_conn_rps_ratio,dnat_new_conn_rps_ratio_vs_kube_proxy,dnat_resync_1000_ms,dead_node_backend_failed_requests,dead_node_backend_failed_requests_kube_proxy,failover_connections_kept_pct_graceful,failover_connections_kept_pct_crash

.PHONY: bench-plugin
bench-plugin: deps ## kubectl pharos in the lab (root): explain p95 with 1,000 Services vs kubectl get, plugin binary size
	go run ./test/bench/plugin | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require explain_p95_ms,explain_p95_ratio_to_kubectl_get,kubectl_pharos_binary_mib

.PHONY: bench-outage
bench-outage: deps ## Control-plane outage in the lab (root): failed requests over a 10-minute outage (OUTAGE=10m), cold start of every Pharos process to the address answering
	go run ./test/bench/outage -outage $(or $(OUTAGE),10m) | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require outage_failed_requests,cold_start_announce_s

.PHONY: chaos
chaos: deps ## Seeded, bounded chaos in the lab (root): Service churn, pool resizes, controller/speaker kills, link flaps, node crashes, apiserver restarts against invariants; CHAOS_FLAGS="-seed=N -duration=4m -ops=200"
	@mkdir -p _output/chaos
	go run ./test/chaos $(CHAOS_FLAGS) > _output/chaos/figures.txt; rc=$$?; \
	  go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require chaos_ops,chaos_faults,chaos_violations < _output/chaos/figures.txt; \
	  exit $$rc

.PHONY: bench-partition
bench-partition: deps ## One node's memberlist port blocked in the lab (root): how long two MACs answer ARP for an address (max over trials), whether healing moves it
	go run ./test/bench/partition | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require partition_two_mac_ms

.PHONY: bench-helm
bench-helm: deps tools ## Time helm install (pool in values) to a Service answering, and helm uninstall, in the lab (root)
	HELM="$(HELM)" go run ./test/bench/helm | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require helm_install_to_ready_s,helm_uninstall_s,helm_baseline_app_ready_s,helm_install_to_ready_ratio

.PHONY: bench-invalid-config
bench-invalid-config: ## Count the invalid-configuration suite (test/testdata/invalid) and check each case offline with kubectl pharos validate's checks; merges invalid_config_cases
	go run ./test/bench/invalidconfig | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require invalid_config_cases

.PHONY: bench-arp-flood
bench-arp-flood: deps ## ARP/NDP flood of the lab's LAN (root): 100,000 requests/s for addresses nobody owns, the speaker's RSS growth and missed answers for its own addresses
	go run ./test/bench/arpflood | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require arp_flood_rss_growth_mib,arp_flood_own_answers_missed,arp_flood_rate_achieved,arp_noflood_own_answers_missed

.PHONY: bench-image
bench-image: deps-image ## Build the image archive as make image-archive does (buildah, root): image_archive_mib (goal < 60 MiB), image_build_s (median of 3, Go cache warm)
	go run ./test/bench/image | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require image_archive_mib,image_build_s

.PHONY: bench-lab-cold
bench-lab-cold: deps ## Time a newcomer's first lab (Kubernetes built from nothing, ~12 min); merges lab_up_cold_s
	go run ./test/bench/lab -cold | go run ./hack/benchmerge -out $(BENCH_SUMMARY) -require lab_up_cold_s

.PHONY: image
image: ## Build the image IMG (controller, speaker, kubectl-pharos) with docker from the Dockerfile
	@docker info >/dev/null 2>&1 || { echo "make image: 'docker info' failed: start the Docker daemon or get access to its socket, or build without Docker: make image-archive" >&2; exit 1; }
	docker build --build-arg VERSION="$$(git describe --tags --always --dirty 2>/dev/null || echo dev)" \
	  --build-arg REVISION="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" -t $(IMG) .

.PHONY: image-archive
image-archive: deps-image ## Build the same image without Docker (buildah, as root) into the OCI archive IMAGE_ARCHIVE, named IMG (IMAGE_ARCH=arm64 for arm64 nodes)
	go run ./hack/image -out $(IMAGE_ARCHIVE) -ref $(IMG) $(if $(IMAGE_ARCH),-arch $(IMAGE_ARCH))

.PHONY: clean
clean: ## Remove bin/ and _output/
	rm -rf bin _output
