# One entry point for people. Every verb is a thin wrapper around the `gitops` CLI (gitops/cli.py), so what runs
# locally is what runs in CI. GNU make reports every failure as exit 2: scripts and CI call `.venv/bin/gitops
# <verb>` directly to see the documented exit codes (docs/cli.md; e.g. diff's 3 = DANGEROUS, bump's 4).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
# The `gitops` CLI of this tree (`python -m` imports the gitops/ beside this Makefile, also in a copy of the tree).
GITOPS := $(PY) -m gitops.cli
# `make render env=prod` would silently render dev: a variable on make's command line that this Makefile never
# reads is refused (make variables are case-sensitive). Known: every upper-case variable a line below mentions, and
# the ones the CLI reads from the environment (PASSED_TO_CLI).
PASSED_TO_CLI := GITOPS_CACHE_DIR DIFF_FORMAT KAFKA_BOOTSTRAP_SERVERS KAFKA_SECURITY_PROTOCOL KAFKA_SASL_MECHANISM \
	KAFKA_SASL_USERNAME KAFKA_SASL_PASSWORD KAFKA_SSL_CA_LOCATION ARGOCD_CRDS_DIR
open := (
KNOWN_VARIABLES := $(PASSED_TO_CLI) $(shell grep -ohE '\$$+[$(open){]?[A-Z][A-Z0-9_]*' $(MAKEFILE_LIST) | tr -d '$${$(open)' | sort -u)
UNKNOWN_VARIABLES := $(filter-out $(KNOWN_VARIABLES),$(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(v))))
upper = $(shell echo '$(1)' | tr a-z A-Z)
unknown_hint = $(foreach v,$(UNKNOWN_VARIABLES),$(v)=$(if $(filter $(call upper,$(v)),$(KNOWN_VARIABLES)), (did you mean $(call upper,$(v))=?)))
# Every verb but setup/help needs the venv; without it, say so in one line instead of "No such file or directory".
NEED_SETUP = @test -z "$(UNKNOWN_VARIABLES)" || { echo "make $@: unknown variable $(unknown_hint): this Makefile does not read it (make help names each verb's variables: ENV=, OUT=, BASE=, ...); nothing was run" >&2; exit 2; }; \
	test -x $(PY) || { echo "make $@: $(PY) is missing: run make setup first" >&2; exit 2; }
# A make variable as one shell word, whatever it holds (spaces, quotes): OUT="dir with space" stays one path.
q = '$(subst ','\'',$(1))'
# ENV set by the person (command line or environment), not the default: `make validate ENV=prd` must refuse prd.
ENV_GIVEN := $(filter command line environment environment override override,$(origin ENV))
ENV ?= dev
FROM ?= dev
TO ?= prod
# Offline mirror of the pinned upstream release assets (see base/platform/releases.lock.yaml).
export KNATIVE_RELEASE_MIRROR ?= $(abspath ../shared/releases)
export ARGOCD_CRDS_DIR ?= $(KNATIVE_RELEASE_MIRROR)/argo-cd-v3.5.1

OUT ?=

.PHONY: help setup render hydrate validate bench-validate test lint serve send-event bench soak diff bump produce kafka promote preflight rollback lock-python e2e replay bench-e2e

help: ## list the verbs
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## venv with pinned Python deps + pinned kustomize/kubeconform/actionlint and knative-admission in ./bin (idempotent)
	@test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . -e apps/notifications
	@./hack/install-tools.sh

render: ## print the manifests Argo CD would apply for ENV (offline, from the mirror)
	$(NEED_SETUP)
	@$(GITOPS) render $(call q,$(ENV))

hydrate: ## write ENV's lock-verified render to OUT as one YAML file per object + provenance.txt (what Argo CD syncs)
	$(NEED_SETUP)
	@test -n $(call q,$(OUT)) || { echo "make hydrate: set OUT=<dir> (e.g. make hydrate ENV=$(ENV) OUT=hydrated/$(ENV))" >&2; exit 2; }
	@$(GITOPS) hydrate --env $(call q,$(ENV)) --out $(call q,$(OUT))

validate: ## render every environment (ENV=<env>: that one), run kubeconform -strict, Knative's own admission webhooks and the semantic checks (HYDRATED=<dir>: ENV's hydrated files instead)
	$(NEED_SETUP)
	@$(GITOPS) validate $(if $(HYDRATED),--hydrated $(call q,$(ENV)=$(HYDRATED)) $(call q,$(ENV)),$(if $(ENV_GIVEN),$(call q,$(ENV))))

bench-validate: ## time validate cold, warm and after one overlay edit for 2, 4, 8 environments (wall and CPU s)
	$(NEED_SETUP)
	@$(PY) -m gitops.validate.bench $(BENCH_VALIDATE_ARGS)

test: ## the whole pytest suite (includes validate's checks and their broken-manifest tests)
	$(NEED_SETUP)
	@$(PY) -m pytest $(PYTEST_ARGS)

lint: ## ruff over all Python
	$(NEED_SETUP)
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

serve: ## run the notifications subscriber with its production server command on 127.0.0.1 (HOST=0.0.0.0 to expose it)
	$(NEED_SETUP)
	@cd apps/notifications && HOST=$${HOST:-127.0.0.1} PORT=$${PORT:-8080} ../../$(PY) -m gitops.cli serve

send-event: ## post a KafkaSource-shaped CloudEvent to a running subscriber (URL=..., TOPIC=<a topic of notifications.topics>)
	$(NEED_SETUP)
	@$(GITOPS) send-event --url "$${URL:-http://127.0.0.1:8080}" --topic "$${TOPIC:-notifications}"

bench: ## load-test the subscriber against the article's handler; prints events/s, p50/p99, peak RSS (BENCH_ARGS=--oidc)
	$(NEED_SETUP)
	@$(GITOPS) bench $(BENCH_ARGS)

soak: ## 2 x 60 s of unique then hostile ids against the subscriber on loopback; fails if peak RSS > its bound
	$(NEED_SETUP)
	@$(GITOPS) soak $(SOAK_ARGS)

diff: ## per-environment resource diff between BASE (a git ref, default origin/main) and the working tree (DIFF_ARGS=--markdown)
	$(NEED_SETUP)
	@$(GITOPS) diff --base "$${BASE:-origin/main}" $(DIFF_ARGS)

bump: ## rewrite every pinned Knative release URL to VERSION, refresh the lock and the admission stage's Go modules
	$(NEED_SETUP)
	@test -n $(call q,$(VERSION)) || { echo "make bump: set VERSION=<x.y.z>, the Knative release to move to (e.g. make bump VERSION=1.23.0)" >&2; exit 2; }
	@$(GITOPS) bump $(call q,$(VERSION))

produce: ## send a test event to Kafka (TOPIC, KEY, CE=binary|structured|none; BOOTSTRAP, else ENV's ConfigMap)
	$(NEED_SETUP)
	@$(GITOPS) produce --env $(call q,$(ENV)) --topic "$${TOPIC:-notifications}" $${KEY:+--key "$$KEY"} \
		--ce "$${CE:-binary}" $${BOOTSTRAP:+--bootstrap-servers "$$BOOTSTRAP"} $(PRODUCE_ARGS)

kafka: ## run a throwaway single-node Kafka on loopback (the one the tests use) until Ctrl-C
	$(NEED_SETUP)
	@$(GITOPS) kafka

e2e: ## ENV's event path through Knative's Java Kafka data plane on loopback; a ledger per scenario (E2E_ARGS=--scenario ...)
	$(NEED_SETUP)
	@$(GITOPS) e2e --env $(ENV) $(E2E_ARGS)

bench-e2e: ## events/s and p50/p99 from produced record to the subscriber's record through the data plane, unordered and ordered, beside make bench
	$(NEED_SETUP)
	@$(GITOPS) bench-e2e --env $(ENV) $(BENCH_E2E_ARGS)

replay: ## list ENV's dead-lettered events and why each failed; REPLAY_ARGS="--send [URL] [--dry-run] [--token-file F]" re-sends them
	$(NEED_SETUP)
	@$(GITOPS) replay --env $(ENV) $(REPLAY_ARGS)

promote: ## copy the image digest FROM one environment TO the next, keeping TO's registry (prod requires a digest)
	$(NEED_SETUP)
	@$(GITOPS) promote --from $(call q,$(FROM)) --to $(call q,$(TO))

preflight: ## check in deploy order what a first deploy of ENV needs that git can know; the checklist, with the command for each step left
	$(NEED_SETUP)
	@$(GITOPS) preflight --env $(call q,$(ENV))

rollback: ## list the image digests and deploy commits ENV ran; DIGEST=<one of them> writes the one-line change back for review
	$(NEED_SETUP)
	@$(GITOPS) rollback --env $(call q,$(ENV)) $(if $(DIGEST),--to $(call q,$(DIGEST)))

lock-python: ## re-resolve requirements.lock from pyproject.toml files
	$(NEED_SETUP)
	@$(PY) -m pip freeze --all --exclude-editable | grep -v "^pip==" | sed '1i # Exact pins for the whole dev/test venv (make setup installs exactly these). Regenerate with\n# `make lock-python` after changing pyproject.toml or apps/notifications/pyproject.toml.' > requirements.lock
