"""The README stays a short front page and the docs stay linked: size, links and anchors, the environment table.

Repository-wide (it reads Markdown and environments.yaml, not the gitops package), so it lives at tests/ root.
"""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_BYTES = 10_000  # issue 13: "README at most 10 KB"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks: a heading or link inside a fence is not rendered as one."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-cased, punctuation dropped, each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(page.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    """The targets of the page's Markdown links (inline code and fenced blocks are not links)."""
    return [target for line in prose_lines(page.read_text()) for target in LINK.findall(CODE_SPAN.sub("", line))]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page):
        if SCHEME.match(target):
            continue  # http(s), mailto: outside this repository
        path, _, anchor = unquote(target).partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with anchor #{anchor} in {resolved.relative_to(ROOT)}")
    return broken


def test_readme_is_at_most_10_kb():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes (at most {README_MAX_BYTES}): move detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_and_anchors_resolve(page: Path):
    assert broken_links(page) == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / unquote(t).partition("#")[0]).resolve() for t in links(README) if not SCHEME.match(t)}
    unlinked = [str(p.relative_to(ROOT)) for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert unlinked == [], "add each page to the README's docs index"


def readme_environment_table(readme: Path = README) -> dict[str, dict[str, object]]:
    """The table under README's "## Environments": one row per environment, one column per fact (YAML values)."""
    lines = prose_lines(readme.read_text())
    start = next(i for i, line in enumerate(lines) if line.strip() == "## Environments")
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip().strip("`") for cell in line.strip().strip("|").split("|")])
        elif rows:
            break  # the first table ends at its first non-table line
    header, _separator, *body = rows
    return {
        row[0]: {fact: yaml.safe_load(value) for fact, value in zip(header[1:], row[1:], strict=True)} for row in body
    }


def test_readme_environment_table_equals_environments_yaml():
    facts = yaml.safe_load((ROOT / "environments.yaml").read_text())["environments"]
    assert readme_environment_table() == facts


# A repository path to Python code quoted in prose (`gitops/validate/run.py`, tests/core/test_render.py, ...).
CODE_PATH = re.compile(r"(?<![\w./-])((?:gitops|tests|apps/notifications/(?:src|tests))/[\w/]*\.py)\b")


def stale_code_paths(text: str, root: Path) -> list[str]:
    """Python files a page names that do not exist: what a module or test move leaves behind in the docs."""
    return sorted({p for p in CODE_PATH.findall(text) if not (root / p).is_file()})


@pytest.mark.parametrize(
    "page", [*PAGES, ROOT / "apps/notifications/README.md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_code_paths_in_docs_exist(page: Path):
    assert stale_code_paths(page.read_text(), ROOT) == []


def test_a_moved_module_is_reported():
    text = "see `gitops/validate/run.py` and gitops/validate.py, tests/test_render.py"
    assert stale_code_paths(text, ROOT) == ["gitops/validate.py", "tests/test_render.py"]


def test_the_readme_says_first_what_a_null_lock_entry_needs():
    """While the release lock has a null digest (an asset no offline copy exists of), nothing deploys: the README's
    first lines say what to run before the first push, and for which version."""
    lock = yaml.safe_load((ROOT / "base/platform/releases.lock.yaml").read_text())["assets"]
    nulls = [url for url, digest in lock.items() if digest is None]
    if not nulls:
        pytest.skip("every lock entry has a digest: nothing to do before the first push")
    version = re.search(r"/knative-v(\d+\.\d+\.\d+)/", nulls[0])[1]
    opening = " ".join(README.read_text().split("## ", 1)[0].split())
    assert f"Before the first push:** run `make bump VERSION={version}` where GitHub is reachable" in opening
    assert "commit `base/platform/releases.lock.yaml`" in opening


def test_docs_say_how_to_review_offline_and_what_plain_kustomize_skips():
    """Plain `kustomize build overlays/dev` fails offline (remote release URLs): the render section says so."""
    render = (DOCS / "verbs.md").read_text().split("## `make render`", 1)[1].split("\n## ", 1)[0]
    assert "Offline, review with `make render` and `make diff`" in render
    assert "Plain `kustomize build overlays/<env>` works too, but only\nonline" in render
    assert "it skips the\nlock check" in render


def test_argocd_md_lists_every_argocd_cm_key():
    """docs/argocd.md named 3 of the 5 health-check keys: the list must be every key argocd/argocd-cm.yaml sets."""
    keys = yaml.safe_load((ROOT / "argocd/argocd-cm.yaml").read_text())["data"]
    text = (DOCS / "argocd.md").read_text()
    listed = set(re.findall(r"^- `([^`]+)`", text.split("under these exact keys", 1)[1], re.M))
    assert listed == set(keys)


def test_readme_setup_line_states_what_each_verb_needs():
    """The README said `make setup` needs Java 17 + Maven; setup runs pip and `go install`/`go build` only. Java and
    Maven are for the tests' Kafka broker (tests/events/kafka_broker.py) and the e2e data plane (JDK 21+)."""
    recipe = (ROOT / "Makefile").read_text().split("\nsetup:", 1)[1].split("\n\n", 1)[0]
    assert not re.search(r"\b(java|mvn)\b", recipe + (ROOT / "hack/install-tools.sh").read_text())
    text = " ".join(README.read_text().split())
    needs = text.split("`make setup` needs ", 1)[1].split(";", 1)[0]
    assert "Go" in needs and "Python 3.11" in needs and "Java" not in needs and "Maven" not in needs, needs
    assert "`make test` also runs a Kafka broker, which needs Java 17+ and Maven" in text
    assert "`make e2e` needs a JDK 21+ and Maven" in text
