"""The fork placeholders: values this repository ships so it renders and validates, and a fork must replace.

This repository's own tree keeps them (it has no real registry, domain, Kafka or GitHub organisation), so
`make validate` only warns about them, once. `make preflight ENV=<env>` fails while any is left in what that
environment deploys: an `example-org` repository URL makes Argo CD fetch someone else's repository, a
`registry.example.com` image never pulls, and an `example-org` CODEOWNERS team approves nothing.

Only lines that are not YAML/CODEOWNERS comments count: the comments may keep naming the examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gitops.core.paths import ENVIRONMENTS_DIR, REPO_ROOT

# The digest both overlays ship: no registry holds it (docs/forking.md, "What a fork sets").
PLACEHOLDER_DIGEST = "sha256:2f5d57e63fd0a601e6f87b5e4da4375fc4da2a552e75a20396aa1fe4995af54e"
REPO_URL = "https://github.com/example-org/knative-kafka-gitops.git"
ARGOCD_APP = "argocd-app.yaml"
CODEOWNERS = ".github/CODEOWNERS"


@dataclass(frozen=True)
class Kind:
    name: str
    pattern: re.Pattern[str]
    fix: str  # {env} is the environment


# Most specific first: one line is reported once, as the first kind that matches it.
REPOSITORY = Kind(
    "the example-org repository URL",
    re.compile(r"github\.com/example-org/"),
    f"sed -i 's#{REPO_URL}#https://github.com/<owner>/<repo>.git#' {ARGOCD_APP}",
)
TEAMS = Kind(
    "the example-org CODEOWNERS teams",
    re.compile(r"@example-org/"),
    f"sed -i 's#@example-org/#@<your-org>/#' {CODEOWNERS}",
)
REGISTRY = Kind(
    "the registry.example.com image repository",
    re.compile(r"registry\.example\.com"),
    f"set newName in {ENVIRONMENTS_DIR}/{{env}}/kustomization.yaml to your registry's repository "
    "(docs/shipping.md, 'The image')",
)
DIGEST = Kind(
    "the placeholder image digest",
    re.compile(re.escape(PLACEHOLDER_DIGEST)),
    "{digest_fix}",
)
DOMAIN = Kind(
    "an example.com domain",
    re.compile(r"(?<![\w-])example\.com"),
    f"put your domain in {ENVIRONMENTS_DIR}/{{env}}/domain.yaml",
)
KAFKA = Kind(
    "an example.internal Kafka server",
    re.compile(r"\.example\.internal"),
    f"put your Kafka bootstrap servers in {ENVIRONMENTS_DIR}/{{env}}/kafka.yaml (every occurrence)",
)
OVERLAY_KINDS = (REGISTRY, DIGEST, DOMAIN, KAFKA)


@dataclass(frozen=True)
class Placeholder:
    kind: Kind
    file: str  # repo-relative
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind.name} ({self.text})"


def _content(line: str) -> str:
    """The line without its comment (YAML and CODEOWNERS: `#` at the start or after a space)."""
    return re.sub(r"(^|\s)#.*$", "", line).strip()


def _scan(root: Path, relative: str, kinds: tuple[Kind, ...]) -> list[Placeholder]:
    path = root / relative
    if not path.is_file():
        return []
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        content = _content(line)
        kind = next((k for k in kinds if k.pattern.search(content)), None)
        if kind is not None:
            found.append(Placeholder(kind, relative, number, content))
    return found


def left_in(env: str, root: Path = REPO_ROOT) -> list[Placeholder]:
    """Every placeholder line in what ENV deploys: its overlay, the Argo CD bootstrap, CODEOWNERS."""
    overlay = root / ENVIRONMENTS_DIR / env
    files = sorted(p for p in overlay.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))
    found = [p for f in files for p in _scan(root, f.relative_to(root).as_posix(), OVERLAY_KINDS)]
    return found + _scan(root, ARGOCD_APP, (REPOSITORY,)) + _scan(root, CODEOWNERS, (TEAMS,))


def fix(kind: Kind, env: str, production: bool) -> str:
    digest_fix = (
        f"make promote FROM=<the environment before {env}> TO={env}, once that one runs a built image"
        if production
        else "push a change under apps/notifications/: image.yaml builds, pushes and pins this digest (docs/shipping.md)"
    )
    return kind.fix.format(env=env, digest_fix=digest_fix)


def summary(found: list[Placeholder]) -> str:
    """`3 kinds (the example-org repository URL, ...) on 9 lines`."""
    kinds = list(dict.fromkeys(p.kind.name for p in found))
    return f"{', '.join(kinds)} ({len(found)} line{'s' if len(found) != 1 else ''})"
