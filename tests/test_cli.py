"""The `gitops` CLI: make's verbs as subcommands, one line per bad input, documented exit codes, and a fork that
adds a real `staging` environment and an `audits` topic by following the docs/forking.md recipes."""

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from gitops import cli
from gitops.core.paths import REPO_ROOT, UPSTREAM_SOURCE_ENV, environments, release_mirror, upstream_source_dir
from tests.events.kafka_broker import KafkaBroker, create_topics, kafka_bootstrap, kafka_broker  # noqa: F401  (session fixtures)
from tests.support import MADE_UP_ENV
from tests.test_docs import readme_environment_table
from tests.workflow_runner import Runner, complete_the_lock

KNOWN = re.escape(", ".join(environments()))

GITOPS = [sys.executable, "-m", "gitops.cli"]


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`gitops <args>` on the tree at `root`: its own gitops and app code, the real tools, mirror and cache."""
    environ = {
        **os.environ,
        "PYTHONPATH": f"{root}{os.pathsep}{root / 'apps/notifications/src'}",
        "KNATIVE_RELEASE_MIRROR": str(release_mirror()),
        UPSTREAM_SOURCE_ENV: str(upstream_source_dir()),  # a copy has no ../shared beside it
        "GITOPS_CACHE_DIR": str(REPO_ROOT / ".cache"),
        **(env or {}),
    }
    return subprocess.run([*GITOPS, *args], cwd=root, env=environ, capture_output=True, text=True, timeout=600)


@pytest.fixture
def fork(tree_copy: Path) -> Path:
    """A copy of the tree that runs its own code: gitops/, the Makefile, the tool pins, and ./bin (the tools)."""
    shutil.copytree(REPO_ROOT / "gitops", tree_copy / "gitops", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "hack", tree_copy / "hack")
    shutil.copy(REPO_ROOT / "Makefile", tree_copy / "Makefile")
    (tree_copy / "bin").symlink_to(REPO_ROOT / "bin")
    # What a fork also has and the recipes and workflows read: the README, the workflows, the Python lock.
    shutil.copy(REPO_ROOT / "README.md", tree_copy / "README.md")
    shutil.copy(REPO_ROOT / "requirements.lock", tree_copy / "requirements.lock")
    shutil.copytree(REPO_ROOT / ".github", tree_copy / ".github")
    return tree_copy


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# --- the table of bad inputs: each is one line and a documented exit code ------------------------------------------


def _bad_kustomization_yaml(root: Path) -> None:
    path = root / "overlays/dev/kustomization.yaml"
    path.write_text(path.read_text().replace("patches:\n", "patches:\n  - path: kafka.yaml\n   - oops\n", 1))


def _misspell_patch(root: Path) -> None:
    path = root / "overlays/dev/kustomization.yaml"
    assert "path: kafka.yaml" in path.read_text()
    path.write_text(path.read_text().replace("path: kafka.yaml", "path: kafak.yaml", 1))


def _overlay_without_entry(root: Path) -> None:
    shutil.copytree(root / "overlays/dev", root / f"overlays/{MADE_UP_ENV}")


BAD_INPUTS = {
    "unknown environment": (
        None,
        ["render", MADE_UP_ENV],
        2,
        rf"^render {MADE_UP_ENV}: overlays/{MADE_UP_ENV}/kustomization.yaml: unknown environment '{MADE_UP_ENV}' "
        rf"\(known: {KNOWN}\); see docs/forking.md, 'Add an environment'$",
    ),
    "bad YAML in an overlay's kustomization": (
        _bad_kustomization_yaml,
        ["render", "dev"],
        2,
        r"^render dev: overlays/dev/kustomization.yaml:\d+:\d+: invalid YAML: .+; fix the syntax",
    ),
    "bad YAML in an overlay's kustomization, validate": (
        _bad_kustomization_yaml,
        ["validate"],
        2,
        r"^gitops validate: overlays/dev/kustomization.yaml:\d+:\d+: invalid YAML: .+; fix the syntax",
    ),
    "misspelt patch file": (
        _misspell_patch,
        ["render", "dev"],
        2,
        # kustomize's reason whole, the missing file's name included (it comes after a multi-line quote).
        r"^render dev: overlays/dev: kustomize build failed: .*path\(kafak.yaml\).*lstat overlays/dev/kafak.yaml: no such "
        r"file or directory; fix that kustomization",
    ),
    "missing lock file": (
        lambda root: (root / "base/platform/releases.lock.yaml").unlink(),
        ["render", "dev"],
        2,
        r"^render dev: base/platform/releases.lock.yaml: missing: .*; restore it with `git checkout -- "
        r"base/platform/releases.lock.yaml`",
    ),
    "overlay without an environments.yaml entry": (
        _overlay_without_entry,
        ["validate"],
        2,
        rf"^gitops validate: environments.yaml: overlays/{MADE_UP_ENV}/ has no entry; add `{MADE_UP_ENV}:` under",
    ),
    "unknown topic for produce": (
        None,
        ["produce", "--topic", "audits", "--bootstrap-servers", "127.0.0.1:9"],
        2,
        r"^error: unknown topic 'audits': expected one of notifications, loggings \(apps/notifications/src/"
        r"notifications/topics.py; docs/forking.md, 'Add a topic'\)$",
    ),
    "unknown environment for produce": (
        None,
        ["produce", "--env", MADE_UP_ENV],
        2,
        rf"^error: environments.yaml: unknown environment '{MADE_UP_ENV}' \(known: {KNOWN}\)",
    ),
    "unknown topic for send-event": (
        None,
        ["send-event", "--topic", "audits"],
        2,
        r"^gitops send-event: error: argument --topic: invalid choice: 'audits' .*\(see `gitops send-event --help`\)$",
    ),
    "unknown environment for promote": (
        None,
        ["promote", "--from", "dev", "--to", MADE_UP_ENV],
        2,
        rf"^promote: environments.yaml: unknown environment '{MADE_UP_ENV}'",
    ),
    "unknown verb": (None, ["deploy"], 2, r"^gitops: error: argument <verb>: invalid choice: 'deploy'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line(fork: Path, case: str) -> None:
    breaks, args, code, pattern = BAD_INPUTS[case]
    if breaks is not None:
        breaks(fork)
    proc = run(fork, *args)
    assert proc.returncode == code, proc.stderr
    assert re.search(pattern, one_line(proc)), one_line(proc)


def test_missing_mirror_says_where_it_looked_and_what_to_set(fork: Path, tmp_path: Path) -> None:
    cold = {"KNATIVE_RELEASE_MIRROR": str(tmp_path / "no-mirror"), "GITOPS_CACHE_DIR": str(tmp_path / "cache")}
    for args, prefix in ((["render", "dev"], "render dev: "), (["validate"], "gitops validate: ")):
        proc = run(fork, *args, env=cold)
        assert proc.returncode == 2
        assert one_line(proc) == (
            f"{prefix}base/platform/kustomization.yaml: release mirror not found: looked in {tmp_path / 'no-mirror'}; "
            "set KNATIVE_RELEASE_MIRROR to the directory holding the pinned release assets "
            "(default: ../shared/releases beside the repository)"
        )
    proc = run(fork, "produce", "--env", "dev", env=cold)
    assert proc.returncode == 2 and "release mirror not found" in one_line(proc)


def test_make_before_setup_says_run_make_setup(fork: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(fork), f"VENV={tmp_path / 'no-venv'}", "validate"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    # The first line is ours; make adds its own "make: *** [Makefile:NN: validate] Error 2" after it.
    first = proc.stderr.strip().splitlines()[0]
    assert first == f"make validate: {tmp_path / 'no-venv'}/bin/python is missing: run make setup first"


def test_busy_port_is_one_line_with_a_hint() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run(REPO_ROOT, "serve", env={"HOST": "127.0.0.1", "PORT": str(port)})
    assert proc.returncode == 2
    assert one_line(proc) == (
        f"serve: 127.0.0.1:{port} is already in use (another `make serve`?); stop that process or pick a free "
        f"port: make serve PORT={port + 1}"
    )


def test_unexpected_error_is_one_line_and_debug_adds_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gitops.core.render

    def broken(_argv: list[str]) -> int:
        raise KeyError("boom")

    monkeypatch.setattr(gitops.core.render, "main", broken)
    assert cli.main(["render", "dev"]) == cli.EXIT_BUG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected KeyError: 'boom'" in err and "rerun with `gitops --debug" in err
    assert cli.main(["--debug", "render", "dev"]) == cli.EXIT_BUG
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_read_only_cache_is_one_line_naming_gitops_cache_dir(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, code: int
) -> None:
    """A read-only checkout: the cache under it cannot be written; the line says which variable moves it."""
    import gitops.core.render

    cache = tmp_path / "checkout/.cache"
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(cache))

    def read_only(_argv: list[str]) -> int:
        raise OSError(code, os.strerror(code), str(cache / "schemas"))

    monkeypatch.setattr(gitops.core.render, "main", read_only)
    assert cli.main(["render", "dev"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this is a bug" not in err
    assert err.startswith(
        f"gitops render: {cache}: cannot write the local cache ({os.strerror(code)}: {cache}/schemas)"
    )
    assert "set GITOPS_CACHE_DIR to a writable directory" in err


def test_unwritable_path_elsewhere_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import gitops.core.render

    def read_only(_argv: list[str]) -> int:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "out"))

    monkeypatch.setattr(gitops.core.render, "main", read_only)
    assert cli.main(["render", "dev"]) == 2
    assert capsys.readouterr().err == (
        f"gitops render: {tmp_path / 'out'}: cannot write it ({os.strerror(errno.EROFS)}); make it writable, or run "
        "from a writable copy of the repository\n"
    )


def test_exit_codes_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    import gitops.diff.report

    monkeypatch.setattr(gitops.diff.report, "main", lambda argv: 3)
    assert cli.main(["diff", "--base", "x"]) == cli.EXIT_DANGEROUS


def test_make_verbs_call_the_cli() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipes = dict(re.findall(r"^([a-z0-9-]+):.*?## .*\n((?:\t.*\n)+)", makefile, flags=re.M))
    verbs = ("render", "validate", "diff", "bump", "produce", "promote", "send-event", "serve", "bench", "kafka")
    for verb in (*verbs, "e2e", "replay", "bench-e2e"):
        assert f"$(GITOPS) {verb}" in recipes[verb] or f"-m gitops.cli {verb}" in recipes[verb], verb
        assert verb in cli.VERBS


def test_docs_are_generated_from_the_parsers() -> None:
    proc = run(REPO_ROOT, "docs")
    assert proc.returncode == 0, proc.stderr
    assert (REPO_ROOT / "docs/cli.md").read_text() == proc.stdout, "regenerate: .venv/bin/gitops docs > docs/cli.md"


# --- the docs/forking.md recipes, on a copy: a real `staging` environment and an `audits` topic ----------------------------


STAGING_API = "https://staging.k8s.example.com:6443"  # the staging cluster's API server, as Argo CD knows it


def add_staging(root: Path) -> None:
    """docs/forking.md "Add an environment", step by step (steps 1-3; step 4 is `gitops deployer-rbac --write`)."""
    shutil.copytree(root / "overlays/dev", root / "overlays/staging")
    envs = root / "environments.yaml"
    envs.write_text(
        envs.read_text()
        + "  staging:\n    production: false\n    automated_sync: true\n"
        + f"    destination: {{server: {STAGING_API}}}\n    load_balancer: false\n"
        + "    kafka_broker_losses: 0\n    scale_to_zero: true\n"
    )
    bootstrap = root / "argocd-app.yaml"
    docs = bootstrap.read_text().split("\n---\n")
    copies = [
        doc.replace("knative-kafka-dev", "knative-kafka-staging")
        .replace("deploy/dev", "deploy/staging")
        .replace("https://kubernetes.default.svc", STAGING_API)
        for doc in docs
        if re.search(r"^kind: (AppProject|Application)$", doc, flags=re.M) and "name: knative-kafka-dev\n" in doc
    ]
    assert len(copies) == 2, "dev's AppProject and Application"
    bootstrap.write_text(
        bootstrap.read_text().rstrip("\n") + "".join(f"\n---\n{c.strip(chr(10))}" for c in copies) + "\n"
    )
    readme = root / "README.md"
    dev_row = next(line for line in readme.read_text().splitlines() if line.startswith("| dev |"))
    staging_row = dev_row.replace("| dev |", "| staging |").replace("https://kubernetes.default.svc", STAGING_API)
    readme.write_text(readme.read_text().replace(dev_row + "\n", f"{dev_row}\n{staging_row}\n", 1))


def add_audits(root: Path) -> None:
    """docs/forking.md "Add a topic", step by step."""
    source = root / "base/eventing/kafka-source.yaml"
    source.write_text(source.read_text().replace("    - loggings\n", "    - loggings\n    - audits\n", 1))
    triggers = root / "base/eventing/triggers.yaml"
    loggings = triggers.read_text().split("\n---\n")[-1]
    triggers.write_text(triggers.read_text().rstrip("\n") + "\n---\n" + loggings.replace("loggings", "audits") + "\n")
    # prod authenticates every delivery: the new Trigger names the subscriber's audience and its identity is
    # allowed (step 3 of the recipe).
    oidc = root / "overlays/prod/oidc.yaml"
    loggings_audience = next(d for d in oidc.read_text().split("\n---\n") if "name: loggings\n" in d)
    oidc.write_text(oidc.read_text().rstrip("\n") + "\n---\n" + loggings_audience.replace("loggings", "audits") + "\n")
    subscriber = root / "overlays/prod/oidc-subscriber.yaml"
    loggings_subject = "system:serviceaccount:notifications:loggings-oidc-eventing.knative.dev-trigger"
    subscriber.write_text(
        subscriber.read_text().replace(
            loggings_subject, f"{loggings_subject},{loggings_subject.replace('loggings', 'audits')}"
        )
    )
    # ... and its dead letters are admitted by the dead-letter sink's EventPolicy.
    policy = root / "overlays/prod/eventpolicy.yaml"
    loggings_sub = f"    - sub: {loggings_subject}\n"
    assert loggings_sub in policy.read_text()
    policy.write_text(
        policy.read_text().replace(loggings_sub, loggings_sub + loggings_sub.replace("loggings", "audits"))
    )
    topics = root / "apps/notifications/src/notifications/topics.py"
    topics.write_text(
        topics.read_text().replace(
            "\n    )\n}",
            '\n        Topic("audits", LogRecord, summarise_log_record, log_record_level, fresh_fields={"timestamp": _now}),'
            "\n    )\n}",
        )
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
# Renders and validates three environments, then hydrates and validates staging as CI would: minutes on a busy
# 2-core machine, beyond the suite's 300 s default.
@pytest.mark.timeout(1200)
def test_fork_adds_staging_and_audits(
    fork: Path,
    kafka_bootstrap: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    add_staging(fork)
    add_audits(fork)
    rbac = run(fork, "deployer-rbac", "--write")
    assert rbac.returncode == 0, rbac.stderr
    assert (fork / "argocd/deployers/staging.yaml").is_file()

    staging = run(fork, "render", "staging")
    assert staging.returncode == 0, staging.stderr
    assert "name: audits" in staging.stdout and "kafkasources/kafka-source#audits" in staging.stdout
    prod = run(fork, "render", "prod")
    audits = prod.stdout.split("name: audits\n")[0].rsplit("---", 1)[-1]
    assert "kafka.eventing.knative.dev/delivery.order: ordered" in audits, "a new prod Trigger is ordered too"

    validated = run(fork, "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "staging: " in validated.stdout and "validate: OK" in validated.stdout
    facts = yaml.safe_load((fork / "environments.yaml").read_text())["environments"]
    assert readme_environment_table(fork / "README.md") == facts

    # The workflows follow environments.yaml: hydrate.yaml's matrix has staging and its hydrate job for staging
    # is green (make hydrate, then make validate on those files), the lock completed as `make bump` leaves it.
    work = tmp_path_factory.mktemp("fork-workflows")
    assets, prepare = complete_the_lock(work, fork)
    runner = Runner(fork, work, extra_assets=assets, prepare=prepare)
    runner.run(
        fork / ".github/workflows/hydrate.yaml",
        only=lambda job, matrix: job == "environments" or (job == "hydrate" and matrix.get("env") == "staging"),
    )
    emitted = runner.record.job("hydrate.yaml", "environments")
    assert emitted.ok, emitted.log()
    assert {"env": "staging", "reviewed": False} in json.loads(emitted.outputs["matrix"])["include"]
    hydrated = runner.record.job("hydrate.yaml", "hydrate", env="staging")
    assert hydrated.ok, hydrated.log()

    # `make kafka` (the test broker) creates the app table's topics: the fork's table lists audits.
    kafka_help = run(fork, "kafka", "--help")
    assert kafka_help.returncode == 0, kafka_help.stderr
    assert "(notifications, loggings, audits; notifications.topics)" in " ".join(kafka_help.stdout.split())
    create_topics(kafka_bootstrap, {"audits": 3})
    produced = run(
        fork, "produce", "--env", "staging", "--topic", "audits", env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    )
    assert produced.returncode == 0, produced.stderr
    assert "topic=audits" in produced.stdout

    port = _free_port()
    serve_env = {
        **os.environ,
        "PYTHONPATH": f"{fork}{os.pathsep}{fork / 'apps/notifications/src'}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    server = subprocess.Popen(
        [*GITOPS, "serve"], cwd=fork, env=serve_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        sent = run(fork, "send-event", "--topic", "audits", "--url", f"http://127.0.0.1:{port}")
        assert sent.returncode == 0, sent.stderr
        assert f"POST http://127.0.0.1:{port}/events/audits" in sent.stdout and "-> 202" in sent.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_a_reader_that_stops_reading_is_not_a_bug(tmp_path):
    """`make promote ... | head -5` closed the pipe before promote printed its last line: the verb ended with
    "unexpected BrokenPipeError ... this is a bug" and exit 70. A reader that stops reading is its choice."""
    (tmp_path / "many_lines.py").write_text("def main(argv):\n    for i in range(200000):\n        print(i)\n")
    (tmp_path / "run.py").write_text(
        "import sys\n"
        "from gitops import cli\n"
        "cli.VERBS['lines'] = cli.Verb('many_lines', 'print many lines')\n"
        "sys.exit(cli.main(['lines']))\n"
    )
    proc = subprocess.run(
        f'{sys.executable} {tmp_path / "run.py"} | head -1; echo "exit ${{PIPESTATUS[0]}}"',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{tmp_path}"},
    )
    assert proc.stdout == "0\nexit 0\n", proc.stdout
    assert proc.stderr == "", proc.stderr
