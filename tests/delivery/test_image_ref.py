"""The image an environment runs: parsing a reference the way promote and the prod policy both read it."""

import pytest

from gitops.delivery import image_ref
from gitops.delivery.image_ref import ImageRef, ImageRefError
from gitops.validate.checks.policy import DIGEST_REF
from tests.delivery.image_support import NEW_DIGEST


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"ghcr.io/acme/notifications@{NEW_DIGEST}", ImageRef("ghcr.io/acme/notifications", NEW_DIGEST)),
        ("localhost:5000/team/notifications:1.4.2", ImageRef("localhost:5000/team/notifications", tag="1.4.2")),
        (f"registry.example.com/a/b:1.0@{NEW_DIGEST}", ImageRef("registry.example.com/a/b", NEW_DIGEST)),
        ("notifications", ImageRef("notifications")),
    ],
)
def test_parse(text: str, expected: ImageRef) -> None:
    ref = image_ref.parse(text)
    assert ref == expected
    # promote's notion of "pinned" must be the prod policy's, or promote would let through what validate rejects.
    assert ref.is_digest == bool(DIGEST_REF.search(str(ref)))


@pytest.mark.parametrize(
    "text",
    ["ghcr.io/acme/n@sha256:abc", f"ghcr.io/acme/n@sha512:{'a' * 64}", "ghcr.io/Acme/n:1", "ghcr.io/acme/n:bad tag"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ImageRefError):
        image_ref.parse(text)


def test_registry_is_the_host_docker_would_log_in_to() -> None:
    assert image_ref.parse("ghcr.io/acme/n:1").registry == "ghcr.io"
    assert image_ref.parse("localhost:5000/n:1").registry == "localhost:5000"
    assert image_ref.parse("acme/n:1").registry == "docker.io"
