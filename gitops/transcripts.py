"""docs/verbs.md's transcripts, regenerated from real runs: `gitops docs --verbs` rewrites them in place.

Each transcript in docs/verbs.md is a code block after a `<!-- transcript NAME -->` marker. NAME is a scenario
below: it prepares a scratch copy of this tree (a git repository whose `origin/main` is the tree as it is, so
`make diff BASE=origin/main` works), changes what the scenario needs, and runs the commands the block shows,
exactly as a person types them (`make ...` through bash, this tree's Makefile and gitops code, the real tools,
mirror and cache). The block becomes each `$ command` followed by its stdout and stderr, in order.

tests/test_docs.py regenerates them and fails when docs/verbs.md differs beyond what changes from run to run
(`normalise`: times, commit ids).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gitops.core.paths import (
    MANIFEST_TREE,
    REPO_ROOT,
    UPSTREAM_SOURCE_ENV,
    cache_dir,
    release_mirror,
    upstream_source_dir,
)

VERBS_MD = Path("docs/verbs.md")
# What a scratch copy holds: the manifests, the code that runs the verbs, the Makefile, the tool pins.
COPIED = (*MANIFEST_TREE, "gitops", "hack", "Makefile", "pyproject.toml", ".gitignore")
MARKER = re.compile(r"(<!-- transcript (?P<name>[a-z0-9-]+)[^>]*-->\n```[^\n]*\n)(?P<body>.*?)(?=^```$)", re.S | re.M)


def _replace(root: Path, path: str, old: str, new: str) -> None:
    file = root / path
    text = file.read_text()
    if old not in text:
        raise RuntimeError(f"transcript scenario: {old!r} is no longer in {path}; update gitops/transcripts.py")
    file.write_text(text.replace(old, new, 1))


def _set_dev_tag(root: Path) -> None:
    from gitops.delivery import image_ref

    image_ref.set_image(root, "dev", image_ref.parse(f"{image_ref.read_image(root, 'dev').repository}:1.4.0"))


def _lose_the_hash(root: Path) -> None:
    _replace(root, "base/eventing/triggers.yaml", "kafka-source#loggings", "kafka-sourceloggings")


def _diff_changes(root: Path) -> None:
    _replace(root, "overlays/prod/kafka.yaml", 'default.topic.partitions: "12"', 'default.topic.partitions: "6"')
    _replace(root, "overlays/prod/delivery.yaml", "retry: 8", "retry: 10")
    _replace(root, "overlays/prod/scale.yaml", 'max-scale: "20"', 'max-scale: "30"')
    _replace(
        root,
        "base/eventing/kafka-source.yaml",
        "consumerGroup: knative-notifications-kafka-source",
        "consumerGroup: notifications-v2",
    )


NEW_DIGEST = "sha256:9b2c6e0d4a1f8e3b7c5d2a9f0e1b4c6d8a3f5e7b9c1d2e4f6a8b0c3d5e7f9a1b"


def _pin_and_commit_dev(root: Path) -> None:
    """CI's image pin, as a commit: the history `make rollback` reads."""
    from gitops.delivery import image_ref

    image_ref.set_image(root, "dev", image_ref.ImageRef(image_ref.read_image(root, "dev").repository, NEW_DIGEST))
    _git(root, "-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-qam", "Pin notifications into dev")


def _prod_registry_apart(root: Path) -> None:
    """A fork that keeps prod's images in a registry of its own (docs/forking.md)."""
    _replace(
        root,
        "overlays/prod/kustomization.yaml",
        "newName: registry.example.com/platform/notifications",
        "newName: registry.prod.example.com/platform/notifications",
    )


@dataclass(frozen=True)
class Scenario:
    commands: tuple[str, ...]
    prepare: Callable[[Path], None] = field(default=lambda root: None)


SCENARIOS: dict[str, Scenario] = {
    "render": Scenario(("make render ENV=prod > prod.yaml", "grep -A12 '^kind: Trigger' prod.yaml | tail -12")),
    "validate": Scenario(("make validate",)),
    "validate-trigger-filter": Scenario(("make validate 2>/dev/null | grep '<trigger-filter>'",), _lose_the_hash),
    "diff": Scenario(("make diff BASE=origin/main",), _diff_changes),
    "promote": Scenario(
        (
            f"gitops pin-image --env dev --image registry.example.com/platform/notifications@{NEW_DIGEST}",
            "make promote FROM=dev TO=prod",
        )
    ),
    "promote-tag": Scenario(("make promote FROM=dev TO=prod",), _set_dev_tag),
    "promote-registry": Scenario(
        (
            f"gitops pin-image --env dev --image registry.example.com/platform/notifications@{NEW_DIGEST} >/dev/null",
            "make promote FROM=dev TO=prod | head -5",
        ),
        _prod_registry_apart,
    ),
    "preflight": Scenario(("make preflight ENV=prod",)),
    "rollback": Scenario(
        ("make rollback ENV=dev", "make rollback ENV=dev DIGEST=2f5d57e63fd0"),
        _pin_and_commit_dev,
    ),
}


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def scratch_copy(dest: Path, root: Path = REPO_ROOT) -> Path:
    """A copy of the tree as a git repository whose HEAD and origin/main are the tree as it is now."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".venv", "*.pyc")
    for name in COPIED:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / name)
    (dest / "bin").symlink_to(root / "bin")  # the tools, never committed (like the real ./bin)
    _git(dest, "init", "-q", "-b", "main")
    (dest / ".git/info/exclude").write_text("/bin\n/venv-bin/\n")
    _git(dest, "add", "-A")
    _git(dest, "-c", "user.name=docs", "-c", "user.email=docs@example.com", "commit", "-q", "-m", "the tree")
    _git(dest, "update-ref", "refs/remotes/origin/main", "HEAD")
    return dest


def run_scenario(name: str, copy: Path) -> str:
    """The transcript of one scenario, run in `copy` (reset to its commit afterwards)."""
    scenario = SCENARIOS[name]
    head = subprocess.run(["git", "-C", str(copy), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    scenario.prepare(copy)
    bin_dir = copy / "venv-bin"
    bin_dir.mkdir(exist_ok=True)
    gitops = bin_dir / "gitops"  # `gitops <verb>` as the copy's own CLI, like .venv/bin/gitops
    gitops.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gitops.cli "$@"\n')
    gitops.chmod(0o755)
    env = {
        # As a person types it: not under an outer make (`make test` in CI), whose MAKELEVEL would print make[2].
        **{k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")},
        "VENV": str(Path(sys.executable).parent.parent),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": f"{copy}{os.pathsep}{copy / 'apps/notifications/src'}",
        "KNATIVE_RELEASE_MIRROR": str(release_mirror()),
        UPSTREAM_SOURCE_ENV: str(upstream_source_dir()),  # the copy has no ../shared beside it
        "GITOPS_CACHE_DIR": str(cache_dir()),
        "COLUMNS": "120",
        "PYTHONUNBUFFERED": "1",  # stdout and stderr interleave as a person sees them
    }
    out = []
    try:
        for command in scenario.commands:
            proc = subprocess.run(
                ["bash", "-c", f"{{ {command}\n}} 2>&1"],
                cwd=copy,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
                timeout=1800,
            )
            out += [f"$ {command}", proc.stdout.replace(f"{copy}/", "").rstrip("\n")]
    finally:
        shutil.rmtree(bin_dir, ignore_errors=True)
        _git(copy, "reset", "-q", "--hard", head)  # a scenario's commits too (rollback's history)
        _git(copy, "clean", "-fdq")
    return "\n".join(line for line in out if line) + "\n"


def regenerate(text: str, names: list[str] | None = None, root: Path = REPO_ROOT) -> str:
    """docs/verbs.md's text with every transcript block (or those of `names`) rerun."""
    found = [m.group("name") for m in MARKER.finditer(text)]
    unknown = sorted(set(found) - SCENARIOS.keys())
    if unknown:
        raise RuntimeError(f"{VERBS_MD}: no scenario for transcript(s) {', '.join(unknown)} in gitops/transcripts.py")
    with tempfile.TemporaryDirectory(prefix="verbs-transcripts-") as scratch:
        copy = scratch_copy(Path(scratch) / "repo", root)
        fresh = {name: run_scenario(name, copy) for name in found if names is None or name in names}
    return MARKER.sub(lambda m: m.group(1) + fresh.get(m.group("name"), m.group("body")), text)


_TIME = re.compile(r"\b\d+\.\d+ ?s\b")


def normalise(text: str) -> str:
    """What changes from run to run: a line that carries a time (a stage's, the total) keeps its words, not its
    figures (counts beside a time, such as a cache's hits, vary too); commit ids (also short ones) and dates."""
    lines = []
    for line in text.splitlines():
        if _TIME.search(line):
            line = re.sub(r"\d+", "N", line)
        line = re.sub(r"@[0-9a-f]{7,40}\b", "@<commit>", line)
        # `make rollback` lists the scratch copy's own commits: their ids and dates are new on every run.
        line = re.sub(r"(?<![0-9a-f:])[0-9a-f]{12}(?![0-9a-f])", "<id>", line)
        line = re.sub(r"\b\d{4}-\d{2}-\d{2}\b", "<date>", line)
        lines.append(re.sub(r"\[Makefile:\d+:", "[Makefile:N:", line))  # make's "make: *** [Makefile:NN: diff] Error 3"
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or None
    path = REPO_ROOT / VERBS_MD
    path.write_text(regenerate(path.read_text(), names))
    print(f"docs: rewrote the transcripts in {VERBS_MD}" + (f" ({', '.join(names)})" if names else ""))
    return 0
