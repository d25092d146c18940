# One entry point for people and CI. Every verb is a thin wrapper around `python -m gitops.<verb>` or a tool,
# so what runs locally is what runs in CI.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
ENV ?= dev
FROM ?= dev
TO ?= prod
# Offline mirror of the pinned upstream release assets (see base/platform/releases.lock.yaml).
export KNATIVE_RELEASE_MIRROR ?= $(abspath ../shared/releases)
export ARGOCD_CRDS_DIR ?= $(KNATIVE_RELEASE_MIRROR)/argo-cd-v3.5.1

OUT ?=

.PHONY: help setup render hydrate validate test lint serve send-event bench soak diff bump produce kafka promote lock-python

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## venv with pinned Python deps + pinned kustomize/kubeconform/actionlint and knative-admission in ./bin (idempotent)
	@test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . -e apps/notifications
	@./hack/install-tools.sh

render: ## print the manifests Argo CD would apply for ENV (offline, from the mirror)
	@$(PY) -m gitops.render $(ENV)

hydrate: ## write ENV's lock-verified render to OUT as one YAML file per object + provenance.txt (what Argo CD syncs)
	@test -n "$(OUT)" || { echo "hydrate: set OUT=<dir> (e.g. make hydrate ENV=$(ENV) OUT=hydrated/$(ENV))" >&2; exit 1; }
	@$(PY) -m gitops.hydrate --env $(ENV) --out $(OUT)

validate: ## render every environment, run kubeconform -strict, Knative's own admission webhooks and the semantic checks (HYDRATED=<dir>: ENV's hydrated files instead)
	@$(PY) -m gitops.validate $(if $(HYDRATED),--hydrated $(ENV)=$(HYDRATED) $(ENV))

test: ## the whole pytest suite (includes validate's checks and their broken-manifest tests)
	@$(PY) -m pytest $(PYTEST_ARGS)

lint: ## ruff over all Python
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

serve: ## run the notifications subscriber with its production server command
	@cd apps/notifications && PORT=$${PORT:-8080} ../../$(PY) -m notifications.serve

send-event: ## post a KafkaSource-shaped CloudEvent to a running subscriber (URL=..., TOPIC=notifications|loggings)
	@$(PY) -m notifications.send_event --url $${URL:-http://127.0.0.1:8080} --topic $${TOPIC:-notifications}

bench: ## load-test the subscriber against the article's handler; prints events/s, p50/p99, peak RSS (BENCH_ARGS=--oidc)
	@$(PY) -m notifications.bench $(BENCH_ARGS)

soak: ## 2 x 60 s of unique then hostile ids against the subscriber on loopback; fails if peak RSS > its bound
	@$(PY) -m notifications.soak $(SOAK_ARGS)

diff: ## per-environment resource diff between BASE (a git ref, default origin/main) and the working tree (DIFF_ARGS=--markdown)
	@$(PY) -m gitops.diff --base $${BASE:-origin/main} $(DIFF_ARGS)

bump: ## rewrite every pinned Knative release URL to VERSION, refresh the lock and the admission stage's Go modules
	@$(PY) -m gitops.bump $(VERSION)

produce: ## send a test event to Kafka (TOPIC, KEY, CE=binary|structured|none; BOOTSTRAP, else ENV's ConfigMap)
	@$(PY) -m gitops.produce --env $(ENV) --topic $${TOPIC:-notifications} $${KEY:+--key "$$KEY"} \
		--ce $${CE:-binary} $${BOOTSTRAP:+--bootstrap-servers $$BOOTSTRAP} $(PRODUCE_ARGS)

kafka: ## run a throwaway single-node Kafka on loopback (the one the tests use) until Ctrl-C
	@$(PY) tests/kafka_broker.py

promote: ## copy the image reference FROM one environment TO the next (prod requires a digest)
	@$(PY) -m gitops.promote --from $(FROM) --to $(TO)

lock-python: ## re-resolve requirements.lock from pyproject.toml files
	@$(PY) -m pip freeze --all --exclude-editable | grep -v "^pip==" | sed '1i # Exact pins for the whole dev/test venv (make setup installs exactly these). Regenerate with\n# `make lock-python` after changing pyproject.toml or apps/notifications/pyproject.toml.' > requirements.lock
