"""Run .github/workflows/*.yaml here, offline: every job's `run:` steps in order, for every matrix entry, against a
git snapshot of the tree, so a job that would fail on GitHub fails `make test`.

What only GitHub has is replaced, and each replacement is recorded (RunRecord.stubbed) with what it would have done:
- actions/checkout: a clone of a local bare repository `origin` holding the snapshot (`git push origin` works and
  lands there; `ref:` and `fetch-depth` are honoured as far as a local clone can);
- actions/setup-python, actions/setup-go and `make setup`: the venv and ./bin of the tree under test are linked
  into the clone (never reinstalled: `pip install -e` in a clone would repoint the shared venv), and pip is
  told PIP_NO_INDEX so a step's `pip install` of an already-installed pin needs no network;
- actions/cache of `.cache/releases`: a warm cache, the offline mirror's assets (plus any `extra_assets`) in the
  cache layout; other caches: a miss;
- actions/upload-artifact and download-artifact: a local directory per artifact name;
- `curl` of the Argo CD CRDs: the offline mirror's copy; any other URL fails the step;
- `gh`, docker/* and actions/github-script: recorded, with the arguments they were given;
- `make test ...`: recorded (it is the suite this runner is part of).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from gitops.core import releases
from gitops.core.paths import RELEASES_LOCK, REPO_ROOT, release_mirror
from tests.support import data_plane_asset

SHA = "0" * 40
STUBBED_RUNS = (re.compile(r"^make setup$"), re.compile(r"^make test( .*)?$"))


@dataclass
class StepRun:
    name: str
    outcome: str  # success | failure | skipped
    output: str = ""


@dataclass
class JobRun:
    workflow: str
    job: str
    matrix: dict[str, Any]
    steps: list[StepRun] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.outcome != "failure" for s in self.steps)

    @property
    def label(self) -> str:
        return f"{self.workflow}/{self.job}" + (f" {json.dumps(self.matrix, sort_keys=True)}" if self.matrix else "")

    def log(self) -> str:
        return "\n".join(f"[{s.outcome}] {s.name}\n{textwrap.indent(s.output[-4000:], '    ')}" for s in self.steps)


@dataclass
class RunRecord:
    jobs: list[JobRun] = field(default_factory=list)
    stubbed: list[str] = field(default_factory=list)

    def job(self, workflow: str, job: str, **matrix: Any) -> JobRun:
        found = [j for j in self.jobs if j.workflow == workflow and j.job == job and matrix.items() <= j.matrix.items()]
        assert len(found) == 1, f"{workflow}/{job} {matrix}: ran {[j.label for j in self.jobs]}"
        return found[0]


class _Ctx(dict):
    """An expression context: attribute access, '' for anything missing (as GitHub's expressions do)."""

    def __getattr__(self, name: str) -> Any:
        value = self.get(name, "")
        return _Ctx(value) if isinstance(value, dict) and not isinstance(value, _Ctx) else value


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return _Ctx({k: _wrap(v) for k, v in value.items()})
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class Runner:
    def __init__(
        self,
        tree: Path,
        work: Path,
        *,
        extra_assets: dict[str, Path] | None = None,
        prepare: Callable[[Path], None] | None = None,
    ) -> None:
        """tree: the repository whose workflows run (its working files, committed as one snapshot on main after
        `prepare(snapshot_dir)`); extra_assets: cache-relative path -> file, added to the warm release cache."""
        self.tree, self.work, self.prepare = tree, work, prepare
        self.extra_assets = extra_assets or {}
        self.record = RunRecord()
        self._jobs_started = 0
        self.origin = work / "origin.git"
        self.artifacts = work / "artifacts"
        self.stubs = work / "stubs"
        self.log_file = work / "stubbed.log"
        self._make_stubs()
        self.sha = self._snapshot()

    # --- set-up -------------------------------------------------------------------------------------------------

    def _git(self, *args: str, cwd: Path) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
        env["GIT_COMMITTER_EMAIL"] = "t@t"
        return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout

    def _snapshot(self) -> str:
        """The tree's files (tracked and untracked, not ignored) as one commit on main of a bare `origin`."""
        source = self.work / "snapshot"
        source.mkdir()
        if (self.tree / ".git").exists():
            listed = self._git("ls-files", "-co", "--exclude-standard", "-z", cwd=self.tree).split("\0")
        else:  # a copy without history: every file but the local state .gitignore names
            skip = {".venv", "bin", ".cache", "__pycache__", ".pytest_cache", ".ruff_cache", "hydrated"}
            listed = [
                str(p.relative_to(self.tree))
                for p in sorted(self.tree.rglob("*"))
                if p.is_file() and not skip & set(p.relative_to(self.tree).parts)
            ]
        for name in filter(None, listed):
            src = self.tree / name
            if src.is_file() and not src.is_symlink():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, source / name)
        if self.prepare is not None:
            self.prepare(source)
        self._git("init", "-q", "-b", "main", cwd=source)
        self._git("add", "-A", cwd=source)
        self._git("commit", "-q", "-m", "snapshot", cwd=source)
        self._git("init", "-q", "--bare", "-b", "main", str(self.origin), cwd=self.work)
        self._git("push", "-q", str(self.origin), "main", cwd=source)
        return self._git("rev-parse", "HEAD", cwd=source).strip()

    def create_branch(self, name: str) -> None:
        """What an admin does once (docs/shipping.md, 'First deploy'): a branch on origin, here an empty one."""
        scratch = self.work / f"branch-{name.replace('/', '-')}"
        self._git("clone", "-q", str(self.origin), str(scratch), cwd=self.work)
        self._git("switch", "-q", "--orphan", name, cwd=scratch)
        self._git("commit", "-q", "--allow-empty", "-m", f"create {name}", cwd=scratch)
        self._git("push", "-q", "origin", f"HEAD:refs/heads/{name}", cwd=scratch)

    def _make_stubs(self) -> None:
        self.stubs.mkdir(parents=True)
        crds = release_mirror() / "argo-cd-v3.5.1"
        stubs = {
            "gh": f'echo "gh $*" >> "{self.log_file}"\n',
            "curl": textwrap.dedent(f"""\
                out=""; url=""
                while [ $# -gt 0 ]; do case "$1" in -o) out="$2"; shift 2;; -*) shift;; *) url="$1"; shift;; esac; done
                echo "curl $url -> $out" >> "{self.log_file}"
                case "$url" in
                  https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/crds/*)
                    cp "{crds}/${{url##*/}}" "$out";;
                  *) echo "curl stub: no network in tests: $url" >&2; exit 6;;
                esac
                """),
        }
        for name, body in stubs.items():
            path = self.stubs / name
            path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + body)
            path.chmod(0o755)

    def _stub(self, what: str) -> None:
        self.record.stubbed.append(what)

    # --- expressions --------------------------------------------------------------------------------------------

    def _eval(self, expr: str, ctx: dict[str, Any]) -> Any:
        py = re.sub(r"(\w+(?:\.[\w-]+)*)\.\*\.(\w+)", r"_star(\1, '\2')", expr)
        py = py.replace("&&", " and ").replace("||", " or ")
        py = re.sub(r"!(?!=)", " not ", py)
        py = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", py)))
        py = re.sub(r"\b(steps|needs)\.([\w-]+)", lambda m: f"{m[1]}[{m[2]!r}]", py)
        names = {k: _wrap(v) for k, v in ctx.items()}
        names |= {
            "fromJSON": json.loads,
            "toJSON": json.dumps,
            "contains": lambda haystack, needle: needle in (haystack or ""),
            "hashFiles": lambda *patterns: hashlib.sha256("".join(patterns).encode()).hexdigest(),
            "cancelled": lambda: False,
            "always": lambda: True,
            "success": lambda: not ctx["_failed"],
            "failure": lambda: ctx["_failed"],
            "_star": lambda items, key: [i.get(key) for i in (items or [])],
        }
        return eval(py, {"__builtins__": {}}, names)

    def _expand(self, value: Any, ctx: dict[str, Any]) -> Any:
        if isinstance(value, str):
            whole = re.fullmatch(r"\$\{\{(.*?)\}\}", value.strip(), re.S)
            if whole and value.count("${{") == 1:
                return self._eval(whole[1], ctx)
            return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _text(self._eval(m[1], ctx)), value, flags=re.S)
        if isinstance(value, dict):
            return {k: self._expand(v, ctx) for k, v in value.items()}
        if isinstance(value, list):
            return [self._expand(v, ctx) for v in value]
        return value

    # --- running ------------------------------------------------------------------------------------------------

    def run(
        self,
        workflow: Path,
        event: dict[str, Any] | None = None,
        only: Callable[[str, dict[str, Any]], bool] | None = None,
    ) -> list[JobRun]:
        """Every job in `needs` order, every matrix entry (only: (job, matrix entry) -> run it?)."""
        doc = YAML(typ="safe").load(workflow.read_text())
        jobs: dict[str, dict[str, Any]] = doc["jobs"]
        done: dict[str, list[JobRun]] = {}
        github = {
            "sha": self.sha,
            "ref": "refs/heads/main",
            "repository": "example-org/knative-kafka-gitops",
            "server_url": "https://github.com",
            "run_id": "1",
            "actor": "github-actions",
            "token": "stub-token",
            "event": event or {},
            "base_ref": (event or {}).get("pull_request", {}).get("base", {}).get("ref", ""),
        }
        while len(done) < len(jobs):
            ready = [n for n, j in jobs.items() if n not in done and all(d in done for d in _list(j.get("needs")))]
            assert ready, f"{workflow.name}: a cycle in `needs`"
            for name in ready:
                job = jobs[name]
                needs = {
                    d: {"outputs": _merged_outputs(done[d]), "result": _result(done[d])}
                    for d in _list(job.get("needs"))
                }
                if any(r["result"] != "success" for r in needs.values()):
                    done[name] = [JobRun(workflow.name, name, {}, [StepRun("needs failed", "skipped")])]
                    continue
                base = {"github": github, "needs": needs, "secrets": {}, "vars": {}, "_failed": False}
                entries = [m for m in self._matrix(job, base) if only is None or only(name, m)]
                done[name] = [self._run_job(workflow.name, name, job, doc, m, base) for m in entries]
                self.record.jobs += done[name]
        return [r for runs in done.values() for r in runs]

    def _matrix(self, job: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
        matrix = (job.get("strategy") or {}).get("matrix")
        if matrix is None:
            return [{}]
        matrix = self._expand(matrix, ctx)
        include = matrix.pop("include", []) if isinstance(matrix, dict) else []
        axes = {k: v for k, v in matrix.items() if k != "exclude"}
        entries = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())] if axes else []
        return entries + list(include)

    def _run_job(
        self, workflow: str, name: str, job: dict[str, Any], doc: dict[str, Any], matrix: dict[str, Any], base: dict
    ) -> JobRun:
        run = JobRun(workflow, name, matrix)
        self._jobs_started += 1
        workdir = self.work / "jobs" / f"{workflow}-{name}-{self._jobs_started}"
        temp = workdir / "runner-temp"
        workspace = workdir / "workspace"
        temp.mkdir(parents=True)
        ctx: dict[str, Any] = {**base, "matrix": matrix, "runner": {"temp": str(temp)}, "steps": {}, "env": {}}
        env_file, output_file, summary = temp / "github_env", temp / "github_output", temp / "summary.md"
        env: dict[str, str] = {
            k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "KNATIVE_", "ARGOCD_", "GITOPS_"))
        }
        env |= {
            "PATH": f"{self.stubs}{os.pathsep}{env['PATH']}",
            "PIP_NO_INDEX": "1",
            # Offline: a download a step would make fails at once on loopback instead of leaving the machine.
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "CI": "true",
            "RUNNER_TEMP": str(temp),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_SHA": self.sha,
            # GitHub's default variables the scripts read.
            "GITHUB_ACTIONS": "true",
            "GITHUB_SERVER_URL": base["github"]["server_url"],
            "GITHUB_REPOSITORY": base["github"]["repository"],
            "GITHUB_RUN_ID": base["github"]["run_id"],
            "GITHUB_REF": base["github"]["ref"],
            "GITHUB_BASE_REF": base["github"]["base_ref"],
            "GITHUB_ACTOR": base["github"]["actor"],
            "RUNNER_OS": "Linux",
            "GITHUB_ENV": str(env_file),
            "GITHUB_STEP_SUMMARY": str(summary),
        }
        env.pop("PYTHONPATH", None)
        for scope in (doc.get("env"), job.get("env")):
            env |= {k: _text(v) for k, v in self._expand(scope or {}, ctx).items()}
        ctx["env"] = env
        for index, step in enumerate(job["steps"]):
            step_id = step.get("id") or f"_{index}"
            label = step.get("name") or step.get("run") or step.get("uses")
            label = self._expand(str(label), ctx).splitlines()[0]
            condition = step.get("if")
            if condition is not None:
                cond = condition.strip()
                cond = cond[3:-2] if cond.startswith("${{") else cond
                wanted = self._eval(cond, ctx)
                if ctx["_failed"] and not re.search(r"always\(\)|cancelled\(\)|failure\(\)", cond):
                    wanted = False
            else:
                wanted = not ctx["_failed"]
            if not wanted:
                run.steps.append(StepRun(label, "skipped"))
                ctx["steps"][step_id] = {"outcome": "skipped", "outputs": {}}
                continue
            output_file.write_text("")
            step_env = {**env, **{k: _text(v) for k, v in self._expand(step.get("env") or {}, ctx).items()}}
            step_env["GITHUB_OUTPUT"] = str(output_file)
            if "uses" in step:
                outcome, text, outputs = self._uses(step, ctx, workspace, temp)
                if step["uses"].startswith("actions/setup-python@"):
                    # Its python on PATH: the tree's venv (which holds requirements.lock's pins).
                    env["PATH"] = f"{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
            else:
                outcome, text = self._run(self._expand(step["run"], ctx), step_env, workspace)
                outputs = _parse_kv(output_file.read_text())
            run.steps.append(StepRun(label, outcome, text))
            ctx["steps"][step_id] = {"outcome": outcome, "outputs": outputs}
            if outcome == "failure":
                ctx["_failed"] = True
            if env_file.is_file():
                env |= _parse_kv(env_file.read_text())
                ctx["env"] = env
        run.outputs = {k: _text(v) for k, v in self._expand(job.get("outputs") or {}, ctx).items()}
        return run

    def _run(self, script: str, env: dict[str, str], workspace: Path) -> tuple[str, str]:
        if any(p.match(script.strip()) for p in STUBBED_RUNS):
            self._stub(
                f"run: {script.strip()} (the venv and ./bin of the tree under test stand in; make test is this suite)"
            )
            return "success", "stubbed"
        cwd = workspace if workspace.is_dir() else workspace.parent
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        return ("success" if proc.returncode == 0 else "failure"), proc.stdout + proc.stderr

    def _uses(self, step: dict[str, Any], ctx: dict[str, Any], workspace: Path, temp: Path) -> tuple[str, str, dict]:
        action = step["uses"].split("@")[0]
        args = self._expand(step.get("with") or {}, ctx)
        if action == "actions/checkout":
            ref = args.get("ref") or "main"
            self._git("clone", "-q", "--branch", ref, str(self.origin), str(workspace), cwd=workspace.parent)
            for name in (".venv", "bin"):
                (workspace / name).symlink_to(REPO_ROOT / name)
            (workspace / ".git" / "info" / "exclude").write_text("/.venv\n/bin\n")
            # What setup-python + `make setup` would leave: the tree's own code installed (here: imported first).
            return "success", f"cloned origin {ref}", {}
        if action in ("actions/setup-python", "actions/setup-go"):
            self._stub(f"{action} {args} (the tree's venv and Go stand in)")
            return "success", "", {}
        if action == "actions/cache":
            paths = str(args.get("path", "")).split()
            if ".cache/releases" in paths:
                self._warm_release_cache(workspace / ".cache" / "releases")
                return "success", "cache hit (the offline mirror)", {"cache-hit": "true"}
            self._stub(f"actions/cache {paths}: a miss")
            return "success", "cache miss", {"cache-hit": "false"}
        if action == "actions/upload-artifact":
            source = workspace / args["path"]
            if not source.exists() or not any(source.iterdir()):
                return "failure", f"no files at {args['path']}", {}
            shutil.copytree(source, self.artifacts / args["name"])
            return "success", f"uploaded {args['name']}", {}
        if action == "actions/download-artifact":
            stored = self.artifacts / args["name"]
            if not stored.is_dir():
                return "failure", f"no artifact {args['name']}", {}
            shutil.copytree(stored, Path(args["path"]), dirs_exist_ok=True)
            return "success", f"downloaded {args['name']}", {}
        if action == "docker/build-push-action":
            digest = "sha256:" + hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()
            self._stub(f"docker build-push {args.get('context')} tags={args.get('tags')} -> {digest}")
            return "success", "", {"digest": digest}
        self._stub(f"{action} {sorted(args)}")
        return "success", "", {}

    def _warm_release_cache(self, cache: Path) -> None:
        for src in release_mirror().rglob("*.yaml"):
            rel = src.relative_to(release_mirror())
            if rel.parts[0].startswith("knative-"):
                (cache / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, cache / rel)
        for rel, src in self.extra_assets.items():
            (cache / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, cache / rel)

    def stubbed_log(self) -> list[str]:
        return self.log_file.read_text().splitlines() if self.log_file.is_file() else []


def _list(value: Any) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _merged_outputs(runs: list[JobRun]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for r in runs:
        merged |= {k: v for k, v in r.outputs.items() if v}
    return merged


def _result(runs: list[JobRun]) -> str:
    return "success" if all(r.ok for r in runs) else "failure"


def _parse_kv(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key] = value
    return found


WORKFLOWS = REPO_ROOT / ".github" / "workflows"


# --- the state `make bump VERSION=1.23.0` leaves where GitHub is reachable ------------------------------------


def null_lock_entries(root: Path = REPO_ROOT) -> list[str]:
    return [url for url, digest in releases.load_lock(root).items() if digest is None]


def complete_the_lock(work: Path, root: Path = REPO_ROOT) -> tuple[dict[str, Path], Callable[[Path], None]]:
    """What `make bump VERSION=1.23.0` where GitHub is reachable leaves behind, for any number of null entries:
    every lock entry has a digest, and the release cache holds the matching files."""
    assets: dict[str, Path] = {}
    digests: dict[str, str] = {}
    for url in null_lock_entries(root):
        asset = releases.ReleaseAsset.parse(url)
        path = work / "assets" / asset.tag / asset.repo / asset.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data_plane_asset(url))
        assets[str(Path(asset.tag) / asset.repo / asset.file)] = path
        digests[url] = hashlib.sha256(path.read_bytes()).hexdigest()

    def prepare(snapshot: Path) -> None:
        lock = snapshot / RELEASES_LOCK
        text = lock.read_text()
        for url, digest in digests.items():
            assert f"{url}: null" in text
            text = text.replace(f"{url}: null", f"{url}: {digest}")
        lock.write_text(text)

    return assets, prepare
