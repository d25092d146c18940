"""`make bench-validate`: what `make validate` costs cold, warm and after one overlay edit, for 2, 4 and 8
environments, wall seconds beside CPU seconds (issue 21).

Each size gets its own temporary copy of the tree: dev and prod, plus copies of dev (`bench-1`, ...) added the way
docs/forking.md adds an environment (the overlay directory and its environments.yaml entry; the copies have no
Argo CD Application or deployer RBAC yet, so the repository checks report that, which costs the same in every
run). Each run is a fresh `python` process (imports included, as for a person typing `make validate`) with its own
store (GITOPS_CACHE_DIR):

- cold: an empty store, so the JSON schemas, every render and every stage result are built from scratch;
- warm: the same tree again, nothing changed;
- one overlay file changed: dev's max-scale moved, so dev is rebuilt and its changed object checked again.

CPU seconds are user + system of the run and every process it waited for (kustomize, kubeconform, the admission
and Pod Security binaries). The load average is printed beside each figure: on a shared machine wall time is
mostly waiting for a core.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from gitops.core.paths import MANIFEST_TREE, REPO_ROOT

SIZES = (2, 4, 8)
CHANGED_FILE = Path("overlays/dev/scale.yaml")
CHANGE = ('autoscaling.knative.dev/max-scale: "3"', 'autoscaling.knative.dev/max-scale: "4"')


@dataclass(frozen=True)
class Measurement:
    envs: int
    run: str
    wall: float
    cpu: float
    hits: int
    lookups: int
    findings: int
    load: float


def make_tree(dest: Path, size: int) -> list[str]:
    """A copy of the tree with dev, prod and size - 2 copies of dev; returns the environments."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".venv", "node_modules", "*.pyc")
    for name in MANIFEST_TREE:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / name)
    yaml = YAML()
    path = dest / "environments.yaml"
    doc = yaml.load(path.read_text())
    copies = [f"bench-{i}" for i in range(1, size - 1)]
    for env in copies:
        shutil.copytree(dest / "overlays" / "dev", dest / "overlays" / env)
        doc["environments"][env] = dict(doc["environments"]["dev"])
    yaml.dump(doc, path)
    return ["dev", "prod", *copies]


def measure(tree: Path, store: Path, envs: list[str], run: str) -> Measurement:
    """One `validate` of `envs` in a fresh process, timed."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "gitops.validate.bench", "--one", str(tree), *envs],
        env={**os.environ, "GITOPS_CACHE_DIR": str(store)},
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"validate failed in the bench tree: {proc.stderr.strip().splitlines()[-1:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measurement(len(envs), run, wall, cpu, result["hits"], result["lookups"], result["findings"], load)


def one(tree: Path, envs: list[str]) -> None:
    """The child: validate `envs` of `tree` with the store of GITOPS_CACHE_DIR; one JSON line of counts."""
    from gitops.core.cache import ResultCache
    from gitops.validate.run import validate

    cache = ResultCache()
    report = validate(tree, envs, cache=cache)
    hits, lookups = cache.hit_rate()
    print(json.dumps({"hits": hits, "lookups": lookups, "findings": len(report.findings)}))


def bench(sizes: tuple[int, ...], out=sys.stdout) -> list[Measurement]:
    results: list[Measurement] = []
    print(
        f"{'envs':>4}  {'run':<24} {'wall s':>7} {'CPU s':>7} {'cache hits':>12} {'findings':>8}  load avg",
        file=out,
        flush=True,
    )
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix=f"bench-validate-{size}-") as scratch:
            tree, store = Path(scratch) / "tree", Path(scratch) / "cache"
            tree.mkdir()
            envs = make_tree(tree, size)
            runs = []
            runs.append(measure(tree, store, envs, "cold"))
            runs.append(measure(tree, store, envs, "warm (no change)"))
            changed = tree / CHANGED_FILE
            text = changed.read_text()
            if CHANGE[0] not in text:
                raise RuntimeError(f"{CHANGED_FILE} no longer holds {CHANGE[0]}: update gitops/validate/bench.py")
            changed.write_text(text.replace(*CHANGE))
            runs.append(measure(tree, store, envs, "one overlay file changed"))
            for m in runs:
                rate = f"{m.hits}/{m.lookups}"
                print(
                    f"{m.envs:>4}  {m.run:<24} {m.wall:>7.1f} {m.cpu:>7.1f} {rate:>12} {m.findings:>8}  {m.load:.1f}",
                    file=out,
                    flush=True,
                )
            results += runs
    by = {(m.envs, m.run): m for m in results}
    if len(sizes) > 1:
        low, high = min(sizes), max(sizes)
        for run in ("cold", "warm (no change)"):
            extra = (by[high, run].cpu - by[low, run].cpu) / (high - low)
            print(f"each extra environment, {run}: {extra:+.2f} CPU s ({low} -> {high} environments)", file=out)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="environment counts (default: 2,4,8)")
    parser.add_argument("--one", nargs="+", metavar=("TREE", "ENV"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        one(Path(args.one[0]), args.one[1:])
        return 0
    sizes = tuple(int(s) for s in args.sizes.split(","))
    if any(s < 2 for s in sizes):
        parser.error("--sizes: every size is at least 2 (dev and prod)")
    bench(sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
