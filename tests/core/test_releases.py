"""Release assets against the lock: a tampered mirror copy or download stops the render; an asset found nowhere is
left out and named."""

import subprocess

import pytest

from gitops.core import releases
from gitops.core.paths import release_mirror
from gitops.core.render import render_env


def test_digest_mismatch_stops_the_render(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    subprocess.run(["cp", "-r", str(release_mirror()), str(mirror)], check=True)
    tampered = mirror / "knative-v1.23.0" / "net-kourier" / "kourier.yaml"
    tampered.chmod(0o644)
    tampered.write_text(tampered.read_text().replace("replicas: 1", "replicas: 2", 1))
    with pytest.raises(releases.DigestMismatch, match=r"kourier.yaml: sha256 .* but the lock says cded0c3c"):
        render_env("dev", mirror=mirror)


def test_asset_missing_everywhere_is_left_out_and_named(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(tmp_path / "cache"))
    mirror = tmp_path / "mirror"
    subprocess.run(["cp", "-r", str(release_mirror()), str(mirror)], check=True)
    (mirror / "knative-v1.23.0" / "eventing-kafka-broker").chmod(0o755)
    (mirror / "knative-v1.23.0" / "eventing-kafka-broker" / "eventing-kafka-source.yaml").unlink()
    # No mirror copy and no network: the download fails, the asset is left out, and the render says why.
    monkeypatch.setattr(
        releases, "download", lambda url, dest: (_ for _ in ()).throw(releases.httpx.ConnectError("offline"))
    )
    render = render_env("dev", mirror=mirror)
    left_out = {gap.url.rsplit("/", 1)[1]: gap.reason for gap in render.omitted}
    assert (
        "not in the mirror" in left_out["eventing-kafka-source.yaml"]
        and "offline" in left_out["eventing-kafka-source.yaml"]
    )
    assert not any(o["metadata"]["name"] == "kafka-source-dispatcher" for o in render.objects)


def test_downloaded_asset_is_checked_against_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(tmp_path / "cache"))
    mirror = tmp_path / "mirror"
    subprocess.run(["cp", "-r", str(release_mirror()), str(mirror)], check=True)
    source = mirror / "knative-v1.23.0" / "eventing-kafka-broker" / "eventing-kafka-source.yaml"
    good = source.read_bytes()
    source.parent.chmod(0o755)
    source.unlink()

    def fake_download(url, dest, body=good):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(body)
        return dest

    monkeypatch.setattr(releases, "download", fake_download)
    render = render_env("dev", mirror=mirror)
    assert any(o["metadata"]["name"] == "kafka-source-dispatcher" for o in render.objects)
    (tmp_path / "cache").chmod(0o755)
    for cached in (tmp_path / "cache").rglob("eventing-kafka-source.yaml"):
        cached.unlink()
    monkeypatch.setattr(releases, "download", lambda url, dest: fake_download(url, dest, good + b"\n# tampered\n"))
    with pytest.raises(releases.DigestMismatch, match=r"downloaded .*eventing-kafka-source.yaml"):
        render_env("dev", mirror=mirror)
