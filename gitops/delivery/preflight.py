"""`make preflight ENV=<env>`: everything a first deploy of ENV needs that git can know, checked in deploy order.

A first deploy is more than `kubectl apply -f argocd-app.yaml`: the release lock must be complete (else hydrate and
CI refuse), the fork's placeholders replaced, an image built and pinned, the Kafka credentials declared, the
deploy branch present, and three things an admin applies to the clusters and to Argo CD. `make validate` judges
the manifests; this verb judges the road to a synced environment and prints it as an ordered checklist: each step
`done`, `TODO` with the one command that does it, or `apply` (an admin's step on a cluster, which git cannot see,
with its command). Exit 1 while a step is TODO, 2 for an unknown environment.

Nothing here reaches a network or a cluster: the deploy branch is looked up among the refs of this clone (as of
its last `git fetch`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gitops.core import environments, manifests, releases
from gitops.core.environments import Environment
from gitops.core.errors import UserError
from gitops.core.paths import RELEASES_LOCK, REPO_ROOT
from gitops.core.render import RenderResult, render_env
from gitops.delivery import deployer_rbac, image_ref, placeholders
from gitops.delivery.hydrate import deploy_branch
from gitops.model import argocd, argocd_health

DONE, TODO, APPLY = "done", "TODO", "apply"
FIELD_MANAGER = "knative-kafka-gitops"  # argocd/argocd-cm.yaml's header: server-side, owning only our keys
# What a Secret reference can be declared by in the render: the Secret itself, or an object that makes it.
SECRET_MAKERS = {
    ("", "Secret"): ("metadata", "name"),
    ("external-secrets.io", "ExternalSecret"): ("spec", "target", "name"),  # default: metadata.name
    ("bitnami.com", "SealedSecret"): ("metadata", "name"),
}
IMPERSONATION_KEY = "application.sync.impersonation.enabled"


@dataclass
class Step:
    title: str
    status: str
    detail: list[str] = field(default_factory=list)
    command: str | None = None


def _lock(root: Path) -> Step:
    lock = releases.load_lock(root)
    urls = releases.referenced_urls(root)
    missing = [url for url in urls if not lock.get(url)]
    title = f"release lock: every upstream asset has a sha256 ({RELEASES_LOCK})"
    if not missing:
        return Step(title, DONE, [f"{len(urls)} assets, each pinned"])
    tags = sorted({releases.ReleaseAsset.parse(url).tag.removeprefix("knative-v") for url in missing})
    return Step(
        title,
        TODO,
        [f"no digest yet: {', '.join(url.rsplit('/', 1)[-1] for url in missing)} (hydrate and CI refuse to deploy)"],
        f"make bump VERSION={tags[0] if len(tags) == 1 else '<version>'}   # where github.com is reachable; "
        f"then commit {RELEASES_LOCK}",
    )


def _placeholders(root: Path, env: Environment) -> Step:
    found = placeholders.left_in(env.name, root)
    title = "fork placeholders replaced (repository URL, domains, Kafka servers, registry, digest, CODEOWNERS teams)"
    if not found:
        return Step(title, DONE)
    detail = []
    for kind in dict.fromkeys(p.kind for p in found):  # one group per kind: where, then its one command
        lines: dict[str, list[str]] = {}
        for p in found:
            if p.kind == kind:
                lines.setdefault(p.file, []).append(str(p.line))
        where = ", ".join(f"{file}:{','.join(numbers)}" for file, numbers in lines.items())
        detail.append(f"{kind.name}: {where}")
        detail.append(f"    fix: {placeholders.fix(kind, env.name, env.production)}")
    return Step(title, TODO, detail)


def _image(root: Path, env: Environment) -> Step:
    ref = image_ref.read_image(root, env.name)
    title = f"image built and pinned: {ref}"
    built = ref.digest != placeholders.PLACEHOLDER_DIGEST and ref.registry != "registry.example.com"
    if built and (ref.is_digest or not env.production):
        return Step(title, DONE, [] if ref.is_digest else [f"a tag ({ref.tag}): fine outside production"])
    why = "a tag: production runs only a sha256 digest" if built else "the placeholder, which no registry holds"
    command = (
        f"make promote FROM=<the environment before {env.name}> TO={env.name}"
        if env.production
        else "git push a change under apps/notifications/   # image.yaml builds, pushes and pins the digest"
    )
    return Step(title, TODO, [f"{image_ref.overlay_file(root, env.name).relative_to(root)}: {why}"], command)


def _walk(node: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, str(key)), value
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, path)


def referenced_secrets(render: RenderResult) -> dict[tuple[str, str], str]:
    """(namespace, Secret name) -> the object that needs it, for this repository's own objects (not upstream's):
    `secretKeyRef`s, the KafkaSink's `auth.secret.ref.name`, the Broker ConfigMap's `auth.secret.ref.name`."""
    found: dict[tuple[str, str], str] = {}
    for obj in render.objects:
        if render.is_upstream(obj):
            continue
        key = manifests.ObjKey.of(obj)
        names = [
            value.get("name")
            for path, value in _walk(obj)
            if isinstance(value, dict) and (path[-1] == "secretKeyRef" or path[-3:] == ("auth", "secret", "ref"))
        ]
        if key.kind == "ConfigMap":
            names.append((obj.get("data") or {}).get("auth.secret.ref.name"))
        for name in names:
            if isinstance(name, str) and name:
                found.setdefault((key.namespace or "", name), f"{key.kind} {key.name}")
    return found


def declared_secrets(render: RenderResult) -> set[tuple[str, str]]:
    declared = set()
    for obj in render.objects:
        key = manifests.ObjKey.of(obj)
        where = SECRET_MAKERS.get((key.group, key.kind))
        if where is not None:
            declared.add((key.namespace or "", str(manifests.dig(obj, *where) or key.name)))
    return declared


def _credentials(render: RenderResult | UserError, env: Environment) -> Step:
    title = "credentials: each Secret the environment's objects read is declared, or created out of band"
    if isinstance(render, UserError):
        return Step(title, TODO, [f"cannot render {env.name}: {render}"], f"make render ENV={env.name}")
    needed = referenced_secrets(render)
    if not needed:
        return Step(title, DONE, ["no Secret is read"])
    declared = declared_secrets(render)
    detail, missing, names = [], [], []
    for (namespace, name), user in sorted(needed.items()):
        if (namespace, name) in declared:
            detail.append(f"Secret {namespace}/{name} ({user}): declared in the render")
        elif name in env.out_of_band_secrets:
            detail.append(f"Secret {namespace}/{name} ({user}): created out of band (environments.yaml)")
        else:
            missing.append(f"Secret {namespace}/{name} ({user}): neither declared in the render nor out of band")
            names.append(name)
    if not missing:
        return Step(title, DONE, detail)
    return Step(
        title,
        TODO,
        missing + detail,
        f"declare it (e.g. an ExternalSecret in overlays/{env.name}/) or add `out_of_band_secrets: "
        f"[{', '.join(sorted(set(names)))}]` to {env.name} in {environments.FILE} once it exists in the cluster",
    )


def _git_has(root: Path, ref: str) -> bool:
    proc = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    return proc.returncode == 0


def _deploy_branch(root: Path, env: Environment) -> Step:
    branch = deploy_branch(env.name)
    title = f"deploy branch {branch} (what Argo CD syncs; written by hydrate.yaml)"
    for ref in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}"):
        if _git_has(root, ref):
            return Step(title, DONE, [f"{ref.removeprefix('refs/remotes/').removeprefix('refs/heads/')} exists"])
    if env.production:
        command = (
            f"git push origin origin/hydrate/{env.name}:refs/heads/{branch}   # once, after reviewing the first "
            f"hydrate/{env.name} (docs/shipping.md)"
        )
    else:
        command = f"git push origin main   # hydrate.yaml validates and pushes {branch} (then `git fetch`)"
    return Step(title, TODO, [f"not among this clone's refs (origin/{branch} as of the last `git fetch`)"], command)


def _deployer(root: Path, render: RenderResult | UserError, env: Environment) -> Step:
    path = deployer_rbac.deployer_file(env.name)
    title = f"deployer RBAC: the identity {env.name} syncs as ({path})"
    if isinstance(render, UserError):
        return Step(title, TODO, [f"cannot render {env.name}: {render}"], f"make render ENV={env.name}")
    file = root / path
    if not file.is_file() or file.read_text() != deployer_rbac.render_file(render):
        why = "missing" if not file.is_file() else "differs from the one derived from the render"
        return Step(title, TODO, [f"{path} {why}"], f".venv/bin/gitops deployer-rbac --write {env.name}")
    return Step(
        title,
        APPLY,
        ["current with the render; a cluster admin applies it once per cluster"],
        f"kubectl --context <{env.name} cluster> apply -f {path.as_posix()}",
    )


def _argocd_cm(root: Path) -> Step:
    path = argocd_health.ARGOCD_CM
    title = f"Argo CD settings: health checks and sync impersonation ({path})"
    problems = argocd_health.drift(root)
    if problems:
        return Step(title, TODO, problems[:3], ".venv/bin/python -m gitops.model.argocd_health --write")
    return Step(
        title,
        APPLY,
        [
            f'{IMPERSONATION_KEY}: "true" is INSTANCE-WIDE: on a shared Argo CD every other team\'s AppProject then',
            "needs destinationServiceAccounts, or its syncs fail (enforced by default); agree it with the Argo CD",
            "admins first (docs/argocd.md, 'Sync impersonation')",
        ],
        f"kubectl apply --server-side --field-manager={FIELD_MANAGER} -f {path.as_posix()}",
    )


def _application(root: Path, env: Environment) -> Step:
    branch = deploy_branch(env.name)
    title = f"Argo CD AppProject and Application for {env.name} ({argocd.APP_FILE})"
    apps = [
        doc
        for doc in argocd.load_docs(root)
        if doc.obj.get("kind") == "Application" and manifests.dig(doc.obj, "spec", "source", "targetRevision") == branch
    ]
    if not apps:
        return Step(
            title,
            TODO,
            [f"no Application in {argocd.APP_FILE} syncs {branch}"],
            f"add {env.name}'s AppProject and Application to {argocd.APP_FILE} (docs/forking.md, 'Add an environment')",
        )
    name = manifests.dig(apps[0].obj, "metadata", "name")
    detail = [f"Application {name} syncs {branch}"]
    if "name" in env.destination:
        detail.append(
            f"the cluster must be registered as {env.destination['name']!r}: "
            f"argocd cluster add <kube-context> --name {env.destination['name']}"
        )
    return Step(title, APPLY, detail, f"kubectl apply -f {argocd.APP_FILE}")


def _sync(root: Path, env: Environment) -> Step:
    app = next(
        (
            manifests.dig(doc.obj, "metadata", "name")
            for doc in argocd.load_docs(root)
            if doc.obj.get("kind") == "Application"
            and manifests.dig(doc.obj, "spec", "source", "targetRevision") == deploy_branch(env.name)
        ),
        f"knative-kafka-{env.name}",
    )
    if env.automated_sync:
        return Step(f"first sync of {app}", APPLY, ["automated: Argo CD syncs each new deploy commit by itself"])
    return Step(
        f"first sync of {app}",
        APPLY,
        ["manual: read the diff first (argocd app diff), then sync"],
        f"argocd app sync {app}",
    )


def steps(env_name: str, root: Path = REPO_ROOT, *, mirror: Path | None = None) -> list[Step]:
    env = environments.load(root).get(env_name)  # an unknown name: UserError, exit 2
    try:
        render: RenderResult | UserError = render_env(env.name, root, mirror=mirror)
    except UserError as error:
        render = error
    return [
        _lock(root),
        _placeholders(root, env),
        _image(root, env),
        _credentials(render, env),
        _deploy_branch(root, env),
        _deployer(root, render, env),
        _argocd_cm(root),
        _application(root, env),
        _sync(root, env),
    ]


def report(env: str, found: list[Step]) -> str:
    lines = [f"preflight {env}: a first deploy, in order (`apply`: an admin's step on a cluster, git cannot see it)"]
    for number, step in enumerate(found, start=1):
        lines.append(f"{number:>2}. [{step.status:^5}] {step.title}")
        lines += [f"            {d}" for d in step.detail]
        if step.command and step.status != DONE:
            lines.append(f"            {'run' if step.status == TODO else 'do'}: {step.command}")
    todo = [n for n, s in enumerate(found, start=1) if s.status == TODO]
    if todo:
        lines.append(f"preflight {env}: NOT READY: step(s) {', '.join(map(str, todo))} to do")
    else:
        lines.append(f"preflight {env}: ready: git holds everything; the `apply` steps remain, in this order")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="an environment of environments.yaml")
    args = parser.parse_args(argv)
    found = steps(args.env, root)
    sys.stdout.write(report(args.env, found))
    return 1 if any(s.status == TODO for s in found) else 0


if __name__ == "__main__":
    sys.exit(main())
