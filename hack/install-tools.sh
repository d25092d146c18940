#!/usr/bin/env bash
# Installs the pinned CLI tools into ./bin with `go install` (from the Go module proxy), unless ./bin or PATH
# already holds the same version. Idempotent: a second run installs nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tool-versions.env
source "$root/hack/tool-versions.env"
bin="$root/bin"
mkdir -p "$bin"

have_version() { # name wanted-version -> 0 if ./bin/name or PATH name reports that version
  local name=$1 want=$2 cand out
  for cand in "$bin/$name" "$(command -v "$name" 2>/dev/null || true)"; do
    [ -n "$cand" ] && [ -x "$cand" ] || continue
    # `go install` builds report their module version in the Go build info (kubeconform's own -v then says
    # "development"); release binaries report it through their version flag.
    out=$(go version -m "$cand" 2>/dev/null | awk '$1 == "mod" {print $3}' || true)
    case $name in
      kustomize) out+=" $("$cand" version 2>/dev/null || true)" ;;
      kubeconform) out+=" $("$cand" -v 2>/dev/null || true)" ;;
      actionlint) out+=" $("$cand" -version 2>/dev/null | head -1 || true)" ;;
      promtool) out+=" $("$cand" --version 2>/dev/null | head -1 || true)" ;;
    esac
    if [[ "$out" == *"${want#v}"* ]]; then
      [ "$cand" = "$bin/$name" ] || ln -sf "$cand" "$bin/$name"
      return 0
    fi
  done
  return 1
}

install() { # name version module
  if have_version "$1" "$2"; then echo "ok: $1 $2"; return; fi
  echo "installing $1 $2 (go install $3@$2)"
  GOBIN="$bin" GOFLAGS=-mod=mod go install "$3@$2"
  have_version "$1" "$2" || { echo "error: $1 $2 did not install" >&2; exit 1; }
}

# Tools that live in this repository: a thin main around an upstream library, pinned by its own go.mod/go.sum
# (`go install pkg@version` cannot build them: the proxy refuses `@v/list` for several Knative modules).
#   knative-admission (hack/knative-admission, docs/admission.md): Knative's own admission webhooks.
#   pod-security (hack/pod-security): the upstream Pod Security admission evaluator.
#   knative-cluster (hack/knative-cluster, docs/e2e.md): kube-apiserver, etcd, kafka-controller and the EventPolicy
#   reconciler that `make e2e` runs (built by build_cluster below).
# Each is rebuilt only when its go.mod, go.sum or a Go source changes: the binary's stamp holds their combined
# sha256, computed the same way as gitops.validate.admission.source_digest (which refuses to run a stale binary).
module_digest() { # dir
  (cd "$root/$1" && LC_ALL=C sha256sum go.mod go.sum *.go | sha256sum | cut -d' ' -f1)
}

tree_digest() { # dir: go.mod, go.sum and every Go source below it (a module with several mains)
  (cd "$root/$1" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
}

build_module() { # name dir
  local name=$1 dir=$2 out="$bin/$1" want log reason
  want=$(module_digest "$dir")
  if [ -x "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$want" ]; then
    echo "ok: $name (sources ${want:0:12})"
    return
  fi
  echo "building $name (go build in $dir; a cold build takes minutes)"
  log=$(mktemp)
  if ! (cd "$root/$dir" && GOFLAGS=-mod=readonly go build -trimpath -ldflags="-s -w" -o "$out.new" .) >"$log" 2>&1; then
    # awk stops at the first line itself: `grep | head -1` under pipefail dies of SIGPIPE (exit 141) on long logs.
    reason=$(awk '!/^go: downloading/ && !/^#/ {print; exit}' "$log")
    rm -f "$out.new" "$log"
    echo "error: $name did not build: ${reason:-go build failed} (it needs Go >= the go line of $dir/go.mod and the Go module proxy)" >&2
    exit 1
  fi
  rm -f "$log"
  mv "$out.new" "$out"
  echo "$want" >"$out.stamp"
}

# The local control plane of `make e2e` (hack/knative-cluster, docs/e2e.md): four binaries from one module, rebuilt
# together when the module changes (one stamp, bin/knative-cluster.stamp). kube-apiserver is stamped with the
# version of k8s.io/kubernetes in go.mod the way Kubernetes' own build does (hack/lib/version.sh there): unstamped it
# reports v0.0.0-master and Knative's controllers refuse it (they check a minimum Kubernetes version).
build_cluster() {
  local dir=hack/knative-cluster want log reason kube major minor ldflags t0 pkg name
  want=$(tree_digest "$dir")
  if [ "$(cat "$bin/knative-cluster.stamp" 2>/dev/null)" = "$want" ] &&
    [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ] && [ -x "$bin/kafka-controller" ] && [ -x "$bin/eventpolicy-controller" ]; then
    echo "ok: knative-cluster: kube-apiserver, etcd, kafka-controller, eventpolicy-controller (sources ${want:0:12})"
    return
  fi
  kube=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$root/$dir/go.mod")
  major=${kube#v}; major=${major%%.*}
  minor=${kube#v*.}; minor=${minor%%.*}
  ldflags="-s -w"
  for var in "gitVersion=$kube" "gitMajor=$major" "gitMinor=$minor" "gitTreeState=clean"; do
    ldflags+=" -X k8s.io/component-base/version.$var -X k8s.io/client-go/pkg/version.$var"
  done
  echo "building knative-cluster (kube-apiserver $kube, etcd, kafka-controller, eventpolicy-controller; cold: ~12 min on 2 busy cores)"
  t0=$SECONDS
  log=$(mktemp)
  for pkg in k8s.io/kubernetes/cmd/kube-apiserver ./etcd knative.dev/eventing-kafka-broker/control-plane/cmd/kafka-controller ./eventpolicy-controller; do
    name=${pkg##*/}
    if ! (cd "$root/$dir" && GOFLAGS=-mod=readonly go build -trimpath -ldflags="$ldflags" -o "$bin/$name.new" "$pkg") >"$log" 2>&1; then
      reason=$(awk '!/^go: downloading/ && !/^#/ {print; exit}' "$log")
      rm -f "$bin/$name.new" "$log"
      echo "error: $name ($dir) did not build: ${reason:-go build failed}" >&2
      exit 1
    fi
    mv "$bin/$name.new" "$bin/$name"
  done
  rm -f "$log"
  echo "$want" >"$bin/knative-cluster.stamp"
  echo "built knative-cluster in $((SECONDS - t0))s"
}

command -v go >/dev/null || { echo "error: Go is needed to install kustomize, kubeconform and actionlint and to build knative-admission and pod-security" >&2; exit 1; }
install kustomize "$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5
install kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform
install actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint/cmd/actionlint
install promtool "$PROMTOOL_VERSION" github.com/prometheus/prometheus/cmd/promtool
install kube-state-metrics "$KUBE_STATE_METRICS_VERSION" k8s.io/kube-state-metrics/v2
# prometheus-operator's CRDs stay in the Go module cache (gitops.core.paths.prometheus_operator_crds_dir reads them).
if ! go mod download github.com/prometheus-operator/prometheus-operator@"$PROMETHEUS_OPERATOR_VERSION" 2>/dev/null; then
  echo "error: go mod download github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION failed (it needs the Go module proxy)" >&2
  exit 1
fi
echo "ok: prometheus-operator CRDs $PROMETHEUS_OPERATOR_VERSION (Go module cache)"

# CRD YAML for `make validate` (gitops/validate/schemas.py reads it from the module cache; never copied in).
if go mod download "github.com/external-secrets/external-secrets@$EXTERNAL_SECRETS_VERSION"; then
  echo "ok: external-secrets $EXTERNAL_SECRETS_VERSION CRDs (Go module cache)"
else
  echo "error: github.com/external-secrets/external-secrets@$EXTERNAL_SECRETS_VERSION did not download (the Go module proxy)" >&2
  exit 1
fi

build_module pod-security hack/pod-security
build_module knative-admission hack/knative-admission
build_cluster
