"""Waivers: findings accepted knowingly (validation-waivers.yaml), never silently."""

from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from gitops.validate.findings import Finding

WAIVERS_FILE = "validation-waivers.yaml"


@dataclass(frozen=True)
class Waiver:
    check: str
    env: str
    object: str
    message_contains: str
    reason: str

    def covers(self, finding: Finding) -> bool:
        return (
            finding.check == self.check
            and finding.env == self.env
            and finding.obj == self.object
            and self.message_contains in finding.message
        )


def load(root: Path) -> list[Waiver]:
    path = root / WAIVERS_FILE
    if not path.is_file():
        return []
    entries = (YAML(typ="safe").load(path.read_text()) or {}).get("waivers") or []
    return [Waiver(**entry) for entry in entries]


def apply(
    findings: list[Finding], waivers: list[Waiver], skipped: tuple[str, ...] = ()
) -> tuple[list[Finding], list[tuple[Finding, Waiver]]]:
    """(findings still failing, waived findings); a waiver matching nothing becomes a failing finding.

    skipped: environments this run did not validate; their waivers cannot be judged stale (`make validate
    ENV=dev HYDRATED=...` must not fail on prod's waivers)."""
    failing: list[Finding] = []
    waived: list[tuple[Finding, Waiver]] = []
    used: set[Waiver] = set()
    for finding in findings:
        waiver = next((w for w in waivers if w.covers(finding)), None)
        if waiver is None:
            failing.append(finding)
        else:
            waived.append((finding, waiver))
            used.add(waiver)
    for waiver in waivers:
        if waiver not in used and waiver.env not in skipped:
            failing.append(
                Finding(
                    "waivers",
                    waiver.env,
                    waiver.object,
                    WAIVERS_FILE,
                    f"stale waiver for {waiver.check}: it matches no finding",
                )
            )
    return failing, waived
