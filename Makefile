# One entry point for people. Every verb is a thin wrapper around the `gitops` CLI (gitops/cli.py), so what runs
# locally is what runs in CI. GNU make reports every failure as exit 2: scripts and CI call `.venv/bin/gitops
# <verb>` directly to see the documented exit codes (docs/cli.md; e.g. diff's 3 = DANGEROUS, bump's 4).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
# The `gitops` CLI of this tree (`python -m` imports the gitops/ beside this Makefile, also in a copy of the tree).
GITOPS := $(PY) -m gitops.cli
# Every verb but setup/help needs the venv; without it, say so in one line instead of "No such file or directory".
NEED_SETUP = @test -x $(PY) || { echo "make $@: $(PY) is missing: run make setup first" >&2; exit 2; }
ENV ?= dev
FROM ?= dev
TO ?= prod
# Offline mirror of the pinned upstream release assets (see base/platform/releases.lock.yaml).
export KNATIVE_RELEASE_MIRROR ?= $(abspath ../shared/releases)
export ARGOCD_CRDS_DIR ?= $(KNATIVE_RELEASE_MIRROR)/argo-cd-v3.5.1

OUT ?=

.PHONY: help setup render hydrate validate bench-validate test lint serve send-event bench soak diff bump produce kafka promote lock-python

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## venv with pinned Python deps + pinned kustomize/kubeconform/actionlint and knative-admission in ./bin (idempotent)
	@test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . -e apps/notifications
	@./hack/install-tools.sh

render: ## print the manifests Argo CD would apply for ENV (offline, from the mirror)
	$(NEED_SETUP)
	@$(GITOPS) render $(ENV)

hydrate: ## write ENV's lock-verified render to OUT as one YAML file per object + provenance.txt (what Argo CD syncs)
	$(NEED_SETUP)
	@test -n "$(OUT)" || { echo "make hydrate: set OUT=<dir> (e.g. make hydrate ENV=$(ENV) OUT=hydrated/$(ENV))" >&2; exit 2; }
	@$(GITOPS) hydrate --env $(ENV) --out $(OUT)

validate: ## render every environment, run kubeconform -strict, Knative's own admission webhooks and the semantic checks (HYDRATED=<dir>: ENV's hydrated files instead)
	$(NEED_SETUP)
	@$(GITOPS) validate $(if $(HYDRATED),--hydrated $(ENV)=$(HYDRATED) $(ENV))

bench-validate: ## time validate cold, warm and after one overlay edit for 2, 4, 8 environments (wall and CPU s)
	$(NEED_SETUP)
	@$(PY) -m gitops.validate.bench $(BENCH_VALIDATE_ARGS)

test: ## the whole pytest suite (includes validate's checks and their broken-manifest tests)
	$(NEED_SETUP)
	@$(PY) -m pytest $(PYTEST_ARGS)

lint: ## ruff over all Python
	$(NEED_SETUP)
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

serve: ## run the notifications subscriber with its production server command
	$(NEED_SETUP)
	@cd apps/notifications && PORT=$${PORT:-8080} ../../$(PY) -m gitops.cli serve

send-event: ## post a KafkaSource-shaped CloudEvent to a running subscriber (URL=..., TOPIC=<a topic of notifications.topics>)
	$(NEED_SETUP)
	@$(GITOPS) send-event --url $${URL:-http://127.0.0.1:8080} --topic $${TOPIC:-notifications}

bench: ## load-test the subscriber against the article's handler; prints events/s, p50/p99, peak RSS (BENCH_ARGS=--oidc)
	$(NEED_SETUP)
	@$(GITOPS) bench $(BENCH_ARGS)

soak: ## 2 x 60 s of unique then hostile ids against the subscriber on loopback; fails if peak RSS > its bound
	$(NEED_SETUP)
	@$(GITOPS) soak $(SOAK_ARGS)

diff: ## per-environment resource diff between BASE (a git ref, default origin/main) and the working tree (DIFF_ARGS=--markdown)
	$(NEED_SETUP)
	@$(GITOPS) diff --base $${BASE:-origin/main} $(DIFF_ARGS)

bump: ## rewrite every pinned Knative release URL to VERSION, refresh the lock and the admission stage's Go modules
	$(NEED_SETUP)
	@$(GITOPS) bump $(VERSION)

produce: ## send a test event to Kafka (TOPIC, KEY, CE=binary|structured|none; BOOTSTRAP, else ENV's ConfigMap)
	$(NEED_SETUP)
	@$(GITOPS) produce --env $(ENV) --topic $${TOPIC:-notifications} $${KEY:+--key "$$KEY"} \
		--ce $${CE:-binary} $${BOOTSTRAP:+--bootstrap-servers $$BOOTSTRAP} $(PRODUCE_ARGS)

kafka: ## run a throwaway single-node Kafka on loopback (the one the tests use) until Ctrl-C
	$(NEED_SETUP)
	@$(GITOPS) kafka

promote: ## copy the image reference FROM one environment TO the next (prod requires a digest)
	$(NEED_SETUP)
	@$(GITOPS) promote --from $(FROM) --to $(TO)

lock-python: ## re-resolve requirements.lock from pyproject.toml files
	$(NEED_SETUP)
	@$(PY) -m pip freeze --all --exclude-editable | grep -v "^pip==" | sed '1i # Exact pins for the whole dev/test venv (make setup installs exactly these). Regenerate with\n# `make lock-python` after changing pyproject.toml or apps/notifications/pyproject.toml.' > requirements.lock
