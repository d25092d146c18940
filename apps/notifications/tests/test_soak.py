"""`make soak`, shortened: both phases run against the real server, RSS figures print, the bound is enforced."""

from __future__ import annotations

import re
import shutil

import pytest
from notifications import soak


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (make bench/soak install it with apt-get)")
@pytest.mark.parametrize(("bound_mib", "exit_code", "verdict"), [(soak.DEFAULT_BOUND_MIB, 0, "ok"), (1, 1, "EXCEEDED")])
def test_short_soak_reports_rss_per_phase_and_enforces_the_bound(
    capsys: pytest.CaptureFixture[str], bound_mib: float, exit_code: int, verdict: str
) -> None:
    assert soak.main(["--seconds", "1", "--sample-seconds", "0.2", "--bound-mib", str(bound_mib)]) == exit_code

    out = capsys.readouterr().out
    phases = dict(re.findall(r"^soak: (unique|hostile)\s+wrk (\{.*?\});", out, re.MULTILINE))
    assert phases.keys() == {"unique", "hostile"}
    assert '"non_2xx":0' in phases["unique"]
    assert '"non_2xx":0' not in phases["hostile"]  # the mix includes events the server must refuse
    assert re.search(rf"peak RSS \(VmHWM\) [\d.]+ MiB \S+ bound \d+ MiB: {verdict}$", out, re.MULTILINE)
