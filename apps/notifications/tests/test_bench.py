"""`make bench` end to end, shortened: both servers start, wrk's CloudEvents are all accepted, figures print."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from notifications import bench


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which("wrk") is None or (os.cpu_count() or 1) < 2, reason="needs wrk and 2 CPUs")
def test_short_bench_run_reports_both_servers(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--seconds", "1", "--rounds", "1", "--connections", "4", "--oidc"]) == 0

    out = capsys.readouterr().out
    rows = {
        m.group(1): m.group(2).split() for m in re.finditer(r"^(article|ours|ours\+oidc) #1\s+(.+)$", out, re.MULTILINE)
    }
    # ours+oidc: every wrk request carried the loopback issuer's token, so non-2xx 0 means all were verified.
    assert rows.keys() == {"article", "ours", "ours+oidc"}
    for name, (events_per_s, _p50, _p99, _cpu, rss, non_2xx, socket_errors, log_lines) in rows.items():
        assert float(events_per_s) > 0, name
        assert float(rss) > 10, name
        assert (non_2xx, socket_errors) == ("0", "0"), name
        assert int(log_lines) > 0, name
    assert "ours / article:" in out
    assert re.search(r"RS256 uncached \d+ us, ES256 uncached \d+ us, cache hit [\d.]+ us", out)
    assert re.search(r"verification off [\d.]+ us, on [\d.]+ us", out)


def test_missing_wrk_prints_the_install_command_and_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[object] = []
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # even as root: never apt-get behind the person's back
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(bench.subprocess, "Popen", lambda *a, **k: ran.append(a))
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--seconds", "1", "--rounds", "1"])
    assert ran == []
    assert stopped.value.code == (
        "make bench: wrk is not installed; install it (Debian/Ubuntu: `sudo apt-get install -y wrk`) and rerun"
    )
