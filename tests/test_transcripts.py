"""docs/verbs.md's transcripts are what the verbs print: rerun in a scratch copy (gitops/transcripts.py), kept current
like docs/cli.md. Regenerate with `.venv/bin/gitops docs --verbs`."""

import pytest

from gitops import transcripts
from gitops.core.paths import REPO_ROOT


def test_every_transcript_in_verbs_md_has_a_scenario():
    text = (REPO_ROOT / transcripts.VERBS_MD).read_text()
    names = [m.group("name") for m in transcripts.MARKER.finditer(text)]
    assert set(names) == set(transcripts.SCENARIOS), "a <!-- transcript NAME --> marker without its scenario"


def test_normalise_keeps_words_and_drops_what_changes_per_run():
    assert transcripts.normalise("validate: OK in 10.5s\ndiff: prod: compared 43.9s") == transcripts.normalise(
        "validate: OK in 109.8s\ndiff: prod: compared 3.0s"
    )
    assert transcripts.normalise("(origin/main@2fb5bb9 → working tree)") == "(origin/main@<commit> → working tree)"
    assert transcripts.normalise("validate: OK") != transcripts.normalise("validate: 2 finding(s)")
    # make rollback's history: the scratch copy's commit ids and dates, never a digest
    assert transcripts.normalise("  now x@sha256:" + "ab" * 32 + "  2026-12-07 91d18a28f655 Pin") == (
        "  now x@sha256:" + "ab" * 32 + "  <date> <id> Pin"
    )


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_verbs_transcripts_are_what_the_verbs_print():
    """Every transcript rerun in a scratch copy of this tree; regenerate with `.venv/bin/gitops docs --verbs`."""
    committed = (REPO_ROOT / transcripts.VERBS_MD).read_text()
    fresh = transcripts.regenerate(committed)
    assert transcripts.normalise(fresh) == transcripts.normalise(committed), (
        "docs/verbs.md's transcripts are stale: regenerate with `.venv/bin/gitops docs --verbs`"
    )
