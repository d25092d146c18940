"""The private network namespace every `make e2e` run lives in (docs/e2e.md, "Safe by construction").

`gitops e2e` runs its whole system (Kafka, the API server, etcd, Knative's controllers and JVMs, the subscriber)
inside `unshare --net --mount`: a network namespace whose only interface is `lo`, and a mount namespace in which
/etc/hosts is a private file naming the cluster's Services on 127.0.0.0/8 (what DNS and kube-proxy do in a
cluster). Nothing started there can reach an address outside 127.0.0.0/8, whatever it was told to call, and the
controllers and API server refuse to start anywhere else (`require_private`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

# Set in the re-executed run, so a run that finds itself outside a private namespace after re-executing stops
# instead of re-executing forever.
INSIDE = "GITOPS_E2E_NETNS"


class NotPrivate(RuntimeError):
    """The process is not in a network namespace of its own with only loopback."""


def interfaces() -> list[str]:
    """The network interfaces of this process's namespace (if_nameindex asks the kernel for the caller's)."""
    return sorted(name for _, name in socket.if_nameindex())


def namespace_id() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def is_private() -> bool:
    """Only `lo` (then no address outside 127.0.0.0/8 is reachable), and, in the re-executed run, not the network
    namespace the run was started in (its id is recorded in INSIDE; /proc/1/ns is not readable here)."""
    if interfaces() != ["lo"]:
        return False
    outer = os.environ.get(INSIDE, "")
    return not outer.isdigit() or int(outer) != namespace_id()


def require_private(what: str) -> None:
    if not is_private():
        raise NotPrivate(
            f"refusing to start {what} outside a private network namespace (interfaces: {', '.join(interfaces())}); "
            "`gitops e2e` runs itself under `unshare --net --mount`"
        )


def reexec_command(argv: Sequence[str], module: str = "gitops.e2e.run") -> list[str]:
    """This run again, as `python -m <module> ARGS` (`gitops e2e`, or `gitops bench-e2e`) under `unshare --net --mount` (private propagation,
    unshare's default, so the /etc/hosts bind mount never reaches the host)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise NotPrivate("`unshare` (util-linux) is not on PATH: the e2e runs only in a private network namespace")
    return [
        unshare,
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--",
        sys.executable,
        "-m",
        module,
        *argv,
    ]


def enter(argv: Sequence[str], module: str = "gitops.e2e.run") -> int | None:
    """Outside a private namespace: run this command again inside one and return its exit code. Inside (the
    re-executed run): None, carry on."""
    if is_private():
        return None
    if os.environ.get(INSIDE):
        raise NotPrivate(f"re-executed under unshare but still not private (interfaces: {', '.join(interfaces())})")
    if os.geteuid() != 0:
        raise NotPrivate("a private network namespace needs root here (`unshare --net` without a user namespace)")
    env = {**os.environ, INSIDE: str(namespace_id())}
    child = subprocess.Popen(reexec_command(argv, module), env=env, preexec_fn=_die_with_parent)

    def forward(signum: int, frame: FrameType | None) -> None:
        # The run inside stops its processes on SIGTERM/SIGINT and exits 130: let it, and wait for it.
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                return child.wait()
            except InterruptedError:
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def bring_up_loopback() -> None:
    """A new network namespace has `lo` down: bring it up (the one interface the run has)."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True, text=True)


def private_hosts(path: Path, names: Mapping[str, str], remount: bool = True) -> None:
    """/etc/hosts inside the namespace becomes `path`: localhost plus `names` (host -> 127.x address), bind-mounted
    over the host's file in this mount namespace only."""
    require_private("a private /etc/hosts")
    for ip in names.values():
        if not ip.startswith("127."):
            raise NotPrivate(f"hosts entry {ip} is outside 127.0.0.0/8")
    lines = ["127.0.0.1 localhost", *(f"{ip} {host}" for host, ip in sorted(names.items()))]
    with path.open("w") as out:  # rewritten in place: the bind mount holds this inode
        out.write("\n".join(lines) + "\n")
    if remount:
        subprocess.run(["mount", "--bind", str(path), "/etc/hosts"], check=True, capture_output=True, text=True)
