"""`make preflight ENV=<env>`: the first deploy's steps in deploy order, each done or with its one command.

This repository's own tree is a fork's starting point: it keeps every placeholder and a lock with null digests,
so its preflight must fail and say what to run. A copy made ready the way a fork would (lock complete,
placeholders replaced, image pinned, credentials accounted for, deploy branch present) must pass.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gitops import cli
from gitops.core.errors import UserError
from gitops.core.paths import REPO_ROOT
from gitops.core.render import RenderResult
from gitops.delivery import deployer_rbac, image_ref, placeholders, preflight
from gitops.validate.run import placeholder_warning
from tests.delivery.image_support import NEW_DIGEST

ORDER = ["release lock", "fork placeholders", "image", "credentials", "deploy branch", "deployer RBAC", "Argo CD"]


def _titles(steps: list[preflight.Step]) -> list[str]:
    return [s.title for s in steps]


def _set_fact(root: Path, env: str, **facts: object) -> None:
    yaml = YAML()
    path = root / "environments.yaml"
    doc = yaml.load(path.read_text())
    doc["environments"][env].update(facts)
    yaml.dump(doc, path)


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def fork_ready(root: Path, mirror: Path, env: str = "prod") -> None:
    """What a fork does before its first deploy of ENV, on a copy whose lock is complete (`hydratable`)."""
    shutil.copytree(REPO_ROOT / ".github", root / ".github")
    app = root / "argocd-app.yaml"
    app.write_text(app.read_text().replace(placeholders.REPO_URL, "https://github.com/acme/knative-kafka-gitops.git"))
    owners = root / ".github/CODEOWNERS"
    owners.write_text(owners.read_text().replace("@example-org/", "@acme/"))
    for path in (root / "overlays").rglob("*.yaml"):
        text = path.read_text().replace("example.com", "acme.io").replace("example.internal", "acme.internal")
        path.write_text(text.replace(placeholders.PLACEHOLDER_DIGEST, NEW_DIGEST))
    _set_fact(root, env, out_of_band_secrets=["kafka-credentials"])
    # `gitops deployer-rbac --write` after the lock changed what the render holds
    render = preflight.render_env(env, root, mirror=mirror)
    (root / deployer_rbac.deployer_file(env)).write_text(deployer_rbac.render_file(render))
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@acme.io", "commit", "-q", "-m", "fork")
    _git(root, "branch", f"deploy/{env}")


def test_this_repositorys_prod_is_not_ready_and_says_what_to_run(tree_copy: Path) -> None:
    shutil.copytree(REPO_ROOT / ".github", tree_copy / ".github")
    steps = preflight.steps("prod", tree_copy)
    for expected, title in zip(ORDER, _titles(steps), strict=False):
        assert expected in title, _titles(steps)
    by_title = {s.title.split(":")[0].split(" (")[0]: s for s in steps}
    lock = steps[0]
    assert lock.status == preflight.TODO
    assert lock.command.startswith("make bump VERSION=1.23.0")
    assert "eventing-kafka-broker.yaml" in lock.detail[0] and "eventing-kafka-sink.yaml" in lock.detail[0]
    left = steps[1]
    assert left.status == preflight.TODO
    named = "\n".join(left.detail)
    for where in ("overlays/prod/domain.yaml", "overlays/prod/kafka.yaml", "overlays/prod/kustomization.yaml"):
        assert where in named, named
    # every line that is no comment: both AppProjects' sourceRepos and both Applications' repoURL
    assert re.search(r"^the example-org repository URL: argocd-app\.yaml:\d+,\d+,\d+,\d+$", named, re.M), named
    assert "    fix: sed -i 's#@example-org/#@<your-org>/#' .github/CODEOWNERS" in left.detail
    assert "make promote FROM=<the environment before prod> TO=prod" in steps[2].command
    credentials = steps[
        3
    ]  # prod declares its Kafka credentials: the ExternalSecret overlays/prod/kafka-credentials.yaml
    assert credentials.status == preflight.DONE
    assert any(
        "Secret notifications/kafka-credentials" in d and "declared in the render" in d for d in credentials.detail
    )
    assert steps[4].status == preflight.TODO  # a copy that is no git clone has no deploy/prod
    assert "git push origin origin/hydrate/prod:refs/heads/deploy/prod" in steps[4].command
    cm = next(s for s in steps if "argocd-cm" in s.title)
    assert cm.command == "kubectl apply --server-side --field-manager=knative-kafka-gitops -f argocd/argocd-cm.yaml"
    assert "INSTANCE-WIDE" in cm.detail[0] and "every other team's AppProject" in cm.detail[0]
    assert by_title, "titles are distinct"
    assert preflight.main(["--env", "prod"], root=tree_copy) == 1


def test_a_fork_made_ready_passes_with_only_the_admins_steps_left(
    hydratable: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, mirror = hydratable
    fork_ready(root, mirror)
    steps = preflight.steps("prod", root, mirror=mirror)
    assert [s.status for s in steps if s.status == preflight.TODO] == [], preflight.report("prod", steps)
    statuses = [s.status for s in steps]
    assert statuses[:5] == [preflight.DONE] * 5
    assert set(statuses[5:]) == {preflight.APPLY}
    text = preflight.report("prod", steps)
    assert "kubectl --context <prod cluster> apply -f argocd/deployers/prod.yaml" in text
    assert "argocd cluster add <kube-context> --name prod" in text
    assert text.rstrip().endswith("the `apply` steps remain, in this order")
    assert placeholder_warning(root, ["dev", "prod"]) is None


def _undeclare_kafka_credentials(root: Path) -> None:
    """Neither the ExternalSecret in prod's overlay nor the out-of-band fact: nothing says where the Secret comes from."""
    _set_fact(root, "prod", out_of_band_secrets=[])
    # the ExternalSecret now writes another Secret (spec.target.name): same kinds, so the deployer RBAC still holds
    _replace(
        root, "overlays/prod/kafka-credentials.yaml", "    name: kafka-credentials\n", "    name: other-credentials\n"
    )


@pytest.mark.parametrize(
    ("edit", "step", "expected"),
    [
        # one placeholder left is enough to fail
        (lambda root: _replace(root, "overlays/prod/domain.yaml", "acme.io", "example.com"), 1, "domain.yaml:8"),
        # a tag in production is no built image
        (
            lambda root: image_ref.set_image(
                root, "prod", image_ref.parse("registry.acme.io/platform/notifications:1")
            ),
            2,
            "a tag: production runs only a sha256 digest",
        ),
        (_undeclare_kafka_credentials, 3, "neither declared in the render"),
        (lambda root: _git(root, "branch", "-D", "deploy/prod"), 4, "not among this clone's refs"),
        (lambda root: _replace(root, "argocd/deployers/prod.yaml", "- watch\n", "", count=1), 5, "differs"),
    ],
)
def test_each_gap_is_one_todo_step(hydratable: tuple[Path, Path], edit, step: int, expected: str) -> None:
    root, mirror = hydratable
    fork_ready(root, mirror)
    edit(root)
    steps = preflight.steps("prod", root, mirror=mirror)
    todo = [i for i, s in enumerate(steps) if s.status == preflight.TODO]
    assert todo == [step], preflight.report("prod", steps)
    assert any(expected in d for d in steps[step].detail), steps[step].detail


def _replace(root: Path, file: str, old: str, new: str, count: int = -1) -> None:
    path = root / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, count))


def test_a_declared_external_secret_counts(broken) -> None:
    render: RenderResult = broken("prod")
    render.objects[:] = [o for o in render.objects if o["kind"] != "ExternalSecret"]  # prod's own declaration
    needed = preflight.referenced_secrets(render)
    assert ("notifications", "kafka-credentials") in needed
    assert ("notifications", "kafka-credentials") not in preflight.declared_secrets(render)
    render.objects.append(
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": "kafka", "namespace": "notifications"},
            "spec": {"target": {"name": "kafka-credentials"}},
        }
    )
    assert ("notifications", "kafka-credentials") in preflight.declared_secrets(render)


def test_unknown_environment_is_bad_input_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match="unknown environment 'prd'"):
        preflight.steps("prd")
    assert cli.main(["preflight", "--env", "prd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown environment 'prd'" in err[0]


def test_validate_warns_once_for_every_environment(tree_copy: Path) -> None:
    shutil.copytree(REPO_ROOT / ".github", tree_copy / ".github")
    line = placeholder_warning(tree_copy, ["dev", "prod"])
    assert line is not None and "\n" not in line
    assert line.startswith("fork placeholders left in dev, prod: ")
    for kind in ("repository URL", "CODEOWNERS teams", "registry.example.com", "placeholder image digest"):
        assert kind in line, line
