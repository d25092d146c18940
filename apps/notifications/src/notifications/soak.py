"""`make soak`: the production server's RSS under sustained load stays within a stated bound, then stops.

Two phases against `python -m notifications.serve` on loopback, each `--seconds` long (60 by default), driven by
wrk: first only unique KafkaSource-shaped events (the dedup window fills to DEDUP_MAX_ENTRIES and stays there),
then a hostile-id mix (ids up to 60 KB in headers and 65 KB in structured bodies, ids over the header limit,
duplicates, events the server must refuse). RSS is sampled every `--sample-seconds`; the run prints per-phase
figures and exits 1 if the peak exceeds `--bound-mib`.

The bound (160 MiB, the pod's limit being 256 Mi) is the idle server (~50 MiB) plus the full dedup window
(100000 x 200 bytes, ~19 MiB) plus request buffers for this load (32 connections x (64 KiB headers + 256 KiB
body), ~10 MiB), with room for the allocator's slack. The server's log goes to /dev/null: the ids are large and
the line per event would fill the disk, not the process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from notifications.bench import ensure_wrk, free_port, peak_rss_mib, wait_until_serving

DEFAULT_BOUND_MIB = 160.0

# One script, two mixes (args: phase, first offset). Every request carries a new id unless it is meant to repeat.
WRK_SCRIPT = r"""
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local phase, offset
local base = {}
function init(args)
  phase = args[1]
  offset = tonumber(args[2])
  base["Content-Type"] = "application/json"
  base["ce-specversion"] = "1.0"
  base["ce-type"] = "dev.knative.kafka.event"
  base["ce-source"] = "/apis/v1/namespaces/soak/kafkasources/kafka-source#notifications"
  base["ce-time"] = "2026-11-26T07:12:03.512Z"
end
local body = '{"notification_id":"0f8fad5b-d9cb-469f-a165-70867728950e","recipient":"user-4711",' ..
  '"channel":"email","title":"t","body":"b","created_at":"2026-11-26T07:12:03.512Z"}'
local function binary(id, omit_source)
  local headers = {}
  for k, v in pairs(base) do headers[k] = v end
  headers["ce-id"] = id
  if omit_source then headers["ce-source"] = nil end
  return wrk.format("POST", nil, headers, body)
end
local function structured(id, extra)
  local doc = '{"specversion":"1.0","type":"t","source":"/soak","id":"' .. id .. '"' .. (extra or "") ..
    ',"data":' .. body .. '}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/cloudevents+json"}, doc)
end
function request()
  counter = counter + 1
  offset = offset + 1
  local id = "partition:" .. tid .. "/offset:" .. offset
  if phase == "unique" then return binary(id) end
  local kind = counter % 10
  if kind <= 3 then return binary(id .. "/" .. string.rep("i", (offset * 7919) % 60000)) end
  if kind == 4 then return structured(id .. string.rep("s", 65000)) end
  if kind == 5 then return binary("the-same-id") end
  if kind == 6 then return binary(id, true) end
  if kind == 7 then return binary(id .. string.rep("o", 70000)) end
  if kind == 8 then return structured(id, ',"data_base64":"\195\169"') end
  return structured(id, ',"comexampledeep":' .. string.rep("[", 300) .. string.rep("]", 300))
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class RssSampler:
    """Samples the server's RSS in a thread while a phase runs."""

    pid: int
    every: float
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_mib(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(rss_mib(self.pid))


def run_phase(wrk: str, script: Path, url: str, phase: str, seconds: int, first_offset: int) -> str:
    command = [wrk, "-t1", "-c32", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), url, "--", phase,
               str(first_offset)]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return completed.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60, help="length of each phase")
    parser.add_argument("--sample-seconds", type=float, default=1.0)
    parser.add_argument("--bound-mib", type=float, default=DEFAULT_BOUND_MIB)
    args = parser.parse_args(argv)
    wrk = ensure_wrk()
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
    with tempfile.TemporaryDirectory(prefix="notifications-soak-") as tmp:
        script = Path(tmp) / "soak.lua"
        script.write_text(WRK_SCRIPT)
        with open(os.devnull, "wb") as devnull:
            server = subprocess.Popen([sys.executable, "-m", "notifications.serve"], env=env, stdout=devnull,
                                      stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/readyz", server)
            idle = rss_mib(server.pid)
            print(f"soak: server pid {server.pid} on 127.0.0.1:{port}, idle RSS {idle:.1f} MiB; "
                  f"{args.seconds}s per phase, bound {args.bound_mib:.0f} MiB", flush=True)  # fmt: skip
            peaks = []
            url = f"http://127.0.0.1:{port}/events/notifications"
            for number, phase in enumerate(("unique", "hostile")):
                with RssSampler(server.pid, args.sample_seconds) as sampler:
                    summary = run_phase(wrk, script, url, phase, args.seconds, number * 1_000_000_000)
                samples = sampler.samples
                peaks.append(max(samples))
                print(f"soak: {phase:<8} wrk {summary}; RSS MiB start {samples[0]:.1f} max {max(samples):.1f} "
                      f"end {samples[-1]:.1f}", flush=True)  # fmt: skip
            hwm = peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    within = hwm <= args.bound_mib
    print(f"soak: peak RSS (VmHWM) {hwm:.1f} MiB {'<=' if within else '>'} bound {args.bound_mib:.0f} MiB: "
          f"{'ok' if within else 'EXCEEDED'}")  # fmt: skip
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
