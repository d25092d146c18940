"""What other engineers and the image rely on: pins, the Dockerfile and the Makefile verbs (the routes: test_app.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parents[1]
REPO = APP_DIR.parents[1]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not an exact pin"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_requirements_txt_pins_match_the_repo_lock() -> None:
    image = _pins(APP_DIR / "requirements.txt")
    lock = _pins(REPO / "requirements.lock")
    mismatched = {name: (version, lock.get(name)) for name, version in image.items() if lock.get(name) != version}
    assert not mismatched, f"requirements.txt vs requirements.lock: {mismatched}"


def test_requirements_txt_covers_every_direct_runtime_dependency() -> None:
    project = tomllib.loads((APP_DIR / "pyproject.toml").read_text())["project"]
    direct = {re.sub(r"[-_.]+", "-", re.split(r"[\s<>=~!\[;]", dep, maxsplit=1)[0]).lower()
              for dep in project["dependencies"]}  # fmt: skip
    assert direct <= _pins(APP_DIR / "requirements.txt").keys()


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (APP_DIR / "Dockerfile").read_text()


def test_dockerfile_is_multi_stage_non_root_and_runs_the_real_server(dockerfile: str) -> None:
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert len(stages) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile, flags=re.MULTILINE).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), "base must be a pinned slim Python 3.11 tag"
    final = dockerfile[dockerfile.rindex("\nFROM ") :]
    assert "COPY --from=build" in final
    assert not re.search(r"apt-get|gcc|build-essential|pip install", final)
    assert re.search(r"^USER 10001(:10001)?$", final, flags=re.MULTILINE)
    cmd = re.search(r"^CMD (.+)$", final, flags=re.MULTILINE).group(1)
    assert cmd == '["python", "-m", "notifications.serve"]'
    assert "--no-deps" in dockerfile and "requirements.txt" in dockerfile


def test_makefile_verbs_point_at_these_modules() -> None:
    """make serve/send-event/bench run the `gitops` CLI verbs, which are thin wrappers over these modules."""
    from gitops.cli import VERBS

    makefile = (REPO / "Makefile").read_text()
    for verb, module in (
        ("serve", "notifications.serve"),
        ("send-event", "notifications.send_event"),
        ("bench", "notifications.bench"),
    ):
        assert f"$(GITOPS) {verb}" in makefile or f"-m gitops.cli {verb}" in makefile, verb
        assert VERBS[verb].target == module
        assert (APP_DIR / "src" / Path(*module.split("."))).with_suffix(".py").is_file()
