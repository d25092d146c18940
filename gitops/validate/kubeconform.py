"""Run the pinned kubeconform, strictly and offline, and turn its JSON report into findings."""

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gitops.core.tools import tool
from gitops.validate import schemas


@dataclass(frozen=True)
class SchemaResult:
    filename: str
    kind: str
    name: str
    version: str
    status: str
    msg: str


def locations(crd_dir: Path) -> list[str]:
    k8s = schemas.kubernetes_schemas()
    # Only local locations: kubeconform's `default` (GitHub) is never listed, and -ignore-missing-schemas is never
    # passed, so an object without a schema is an error, not a pass.
    return [f"{k8s}/{schemas.K8S_TEMPLATE}", f"{crd_dir}/{schemas.CRD_TEMPLATE}"]


def command(crd_dir: Path) -> list[str]:
    """kubeconform and its flags (the stage's whole configuration: part of every cached result's key)."""
    cmd = [
        tool("kubeconform"),
        "-strict",
        "-output",
        "json",
        "-kubernetes-version",
        schemas.KUBERNETES_VERSION,
    ]
    for location in locations(crd_dir):
        cmd += ["-schema-location", location]
    return cmd


def run(stream: str, crd_dir: Path, filename: str = "stdin") -> list[SchemaResult]:
    """Validate a YAML stream; returns every resource that is not valid (invalid, error or skipped)."""
    proc = subprocess.run(command(crd_dir), input=stream, capture_output=True, text=True)
    return _results(proc, filename, crd_dir)


def run_documents(documents: dict[str, str], crd_dir: Path) -> dict[str, list[SchemaResult]]:
    """Validate many YAML documents in one kubeconform run: name -> the document's results that are not valid.

    Each document is its own file, so kubeconform's report says exactly which document a result is about (from a
    stream it names kind and name but not the namespace, and two objects may share both)."""
    if not documents:
        return {}
    with tempfile.TemporaryDirectory(prefix="kubeconform-") as scratch:
        paths = {}
        for name, text in documents.items():
            path = Path(scratch) / f"{name}.yaml"
            path.write_text(text)
            paths[str(path)] = name
        proc = subprocess.run([*command(crd_dir), *paths], capture_output=True, text=True)
    found: dict[str, list[SchemaResult]] = {name: [] for name in documents}
    for result in _results(proc, None, crd_dir):
        found[paths[result.filename]].append(result)
    return found


def _results(proc: subprocess.CompletedProcess, filename: str | None, crd_dir: Path) -> list[SchemaResult]:
    """kubeconform's JSON report as results, each named `filename` (None: the file kubeconform names)."""
    try:
        report = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError as error:
        raise RuntimeError(f"kubeconform gave no JSON report (exit {proc.returncode}): {proc.stderr}") from error
    results = [
        SchemaResult(
            filename=r.get("filename", "") if filename is None else filename,
            kind=r.get("kind", ""),
            name=r.get("name", ""),
            version=r.get("version", ""),
            status=r.get("status", ""),
            msg=schemas.explain_missing_schema(
                r.get("kind", ""), r.get("version", ""), stable_message(r.get("msg", "")), crd_dir
            ),
        )
        for r in report.get("resources") or []
    ]
    if proc.returncode != 0 and not results:
        raise RuntimeError(f"kubeconform failed (exit {proc.returncode}): {proc.stderr or proc.stdout}")
    return results


# One cause in kubeconform's message: jsonschema writes each on its own line, indented two spaces per level and led
# by "- at '<path>'" (santhosh-tekuri/jsonschema v6 output.go, display); kubeconform joins the lines with spaces.
_CAUSE = re.compile(r" ((?:  )*)- (?=at ')")
_Causes = list[tuple[str, "_Causes"]]


def stable_message(msg: str) -> str:
    """kubeconform's message with the causes at each level sorted.

    jsonschema lists a document's causes in Go map order, which changes from run to run (two runs in thirty put a
    Service's '/spec' cause before its '/metadata/namespace' one): sorted, the same document always gets the same
    message, so a stored result reads exactly like a fresh one and a finding does not flicker between runs. A
    message of another shape is returned as it is."""
    head, *rest = _CAUSE.split(msg)
    items = [(len(rest[i]) // 2 + 1, rest[i + 1]) for i in range(0, len(rest), 2)]

    def tree(start: int, level: int) -> tuple[_Causes, int]:
        causes: _Causes = []
        i = start
        while i < len(items) and items[i][0] == level:
            below, after = tree(i + 1, level + 1)
            causes.append((items[i][1], below))
            i = after
        return causes, i

    def text(causes: _Causes, level: int) -> str:
        return "".join(sorted(f" {'  ' * (level - 1)}- {cause}{text(below, level + 1)}" for cause, below in causes))

    causes, end = tree(0, 1)
    return head + text(causes, 1) if end == len(items) else msg


def documents(text: str) -> list[str]:
    """A YAML stream's documents, each as its own bytes (what kubeconform reads for that object); documents with
    nothing but comments or blank lines are left out, as kubeconform and the YAML loader leave them out."""
    docs: list[str] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.rstrip() == "---":
            docs.append("".join(current))
            current = []
        else:
            current.append(line)
    docs.append("".join(current))
    return [d for d in docs if any(s.strip() and not s.lstrip().startswith("#") for s in d.splitlines())]
