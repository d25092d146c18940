"""environments.yaml is the one place for environment facts: every mistake in it is one line naming the file."""

import re
import shutil
from pathlib import Path

import pytest

from gitops.core import environments
from gitops.core.errors import UserError
from gitops.core.paths import environments as _environment_names
from gitops.core.paths import overlay_names
from tests.support import MADE_UP_ENV, add_environment

KNOWN = re.escape(", ".join(_environment_names()))


def test_the_shipped_facts() -> None:
    envs = environments.load()
    assert envs.names == overlay_names() and {"dev", "prod"} <= set(envs.names)  # a fork may add more
    assert envs.is_production("prod") and not envs.is_production("dev")
    assert envs.get("dev").automated_sync and not envs.get("prod").automated_sync
    assert envs.get("prod").destination == {"name": "prod"}
    assert not envs.get("dev").load_balancer


def test_an_added_environment_takes_its_facts_from_the_file(tree_copy: Path) -> None:
    add_environment(tree_copy, MADE_UP_ENV, like="dev", production=True)
    envs = environments.load(tree_copy)
    assert MADE_UP_ENV in envs.names and envs.is_production(MADE_UP_ENV)


def test_overlay_without_entry_is_one_line(tree_copy: Path) -> None:
    shutil.copytree(tree_copy / "overlays/dev", tree_copy / f"overlays/{MADE_UP_ENV}")
    with pytest.raises(UserError) as raised:
        environments.load(tree_copy)
    assert str(raised.value) == (
        f"environments.yaml: overlays/{MADE_UP_ENV}/ has no entry; add `{MADE_UP_ENV}:` under `environments:` "
        "(see docs/forking.md, 'Add an environment')"
    )


def test_entry_without_overlay_is_one_line(tree_copy: Path) -> None:
    shutil.rmtree(tree_copy / "overlays/dev")
    with pytest.raises(UserError, match=r"^environments.yaml: environment 'dev' has no overlays/dev/kustomization"):
        environments.load(tree_copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace("production: false", "production: maybe"),
            "`production` must be true or false (got 'maybe')",
        ),
        (lambda t: t.replace("load_balancer: true", "load_balancr: true"), "`load_balancer` must be true or false"),
        # `automated_sync:` with nothing after it is YAML null: say so, not "must be a bool (got None)"
        (
            lambda t: t.replace("automated_sync: true", "automated_sync:"),
            "`automated_sync` is empty; write true or false after the colon",
        ),
        (
            lambda t: t.replace("production: true", "production: true\n    out_of_band_secrets: kafka-credentials"),
            "`out_of_band_secrets` must be a list of names",
        ),
        (
            lambda t: t.replace("kafka_broker_losses: 1", "kafka_broker_losses: -1"),
            "`kafka_broker_losses` must be a whole number >= 0 (got -1)",
        ),
        (
            lambda t: t.replace("scale_to_zero: false", "scale_to_zero: no way"),
            "`scale_to_zero` must be true or false",
        ),
        (lambda t: t.replace("{name: prod}", "{name: prod, server: x}"), "exactly one of server or name"),
        (lambda t: t.replace("environments:", "environmnets:"), "has no `environments:` mapping"),
    ],
)
def test_bad_facts_are_one_line(tree_copy: Path, edit, message: str) -> None:
    path = tree_copy / "environments.yaml"
    path.write_text(edit(path.read_text()))
    with pytest.raises(UserError) as raised:
        environments.load(tree_copy)
    assert str(raised.value).startswith("environments.yaml: ") and message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_yaml_syntax_error_names_file_and_line(tree_copy: Path) -> None:
    path = tree_copy / "environments.yaml"
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip() == "prod:")
    lines[index] = "  prod: [unclosed"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"^environments.yaml:\d+:\d+: invalid YAML: expected ',' or ']'") as raised:
        environments.load(tree_copy)
    line = int(str(raised.value).split(":")[1])
    assert index + 1 <= line <= index + 3, "the line of the broken entry (or the parser's next token)"


def test_missing_file(tree_copy: Path) -> None:
    (tree_copy / "environments.yaml").unlink()
    with pytest.raises(UserError, match=r"^environments.yaml: missing; restore it from git"):
        environments.load(tree_copy)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match=rf"unknown environment '{MADE_UP_ENV}' \(known: {KNOWN}\)"):
        environments.load().get(MADE_UP_ENV)
