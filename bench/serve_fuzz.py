"""Schemathesis against a real `agent serve` on a loopback port: generated requests (positive and negative data) for
every operation in /openapi.json, once with a key of each scope and once with none. Fails on any 5xx response and
on any response that breaks the documented schema. Prints the number of generated requests and the failures.

Needs `pip install schemathesis` (not a dependency of the project).
Usage: python bench/serve_fuzz.py [--examples 60] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from serve import create_key, free_port, peak_rss_mb, start_server, stored

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def fuzz(port: int, key: str | None, examples: int, report: Path) -> tuple[int, list[str]]:
    """One Schemathesis run; how many requests it sent and the failures it found (check names)."""
    cmd = ["schemathesis", "run", f"http://127.0.0.1:{port}/openapi.json", "--checks", CHECKS, "--mode", "all",
           "--max-examples", str(examples), "--seed", "0", "--no-color", "--workers", "1", "--phases", "examples,coverage,fuzzing",
           "--report", "ndjson", "--report-ndjson-path", str(report), "--suppress-health-check", "all",
           "--generation-database", "none"]
    if key:
        cmd += ["-H", f"Authorization: Bearer {key}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    requests, failures = 0, []
    for line in report.read_text().splitlines():
        event = json.loads(line)
        for case in _cases(event):
            requests += 1
            failures += [f"{c['name']}: {c.get('failure_info') or c.get('status')}" for c in case.get("checks", [])
                         if str(c.get("status")).lower() == "failure"]
    if done.returncode not in (0, 1):
        print(done.stdout[-3000:], done.stderr[-3000:])
    return requests, failures


def _cases(event: dict) -> list[dict]:
    """The test cases (request, response, checks) one ndjson event of a scenario carries."""
    finished = event.get("ScenarioFinished") or {}
    recorder = finished.get("recorder") or {}
    cases = recorder.get("cases") or {}
    checks = recorder.get("checks") or {}
    interactions = recorder.get("interactions") or {}
    return [{"id": cid, "checks": checks.get(cid, []), "response": interactions.get(cid)} for cid in cases
            if cid in interactions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=60, help="examples per operation and run")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("schemathesis") is None:
        sys.exit("schemathesis not found: pip install schemathesis")
    work = args.work or Path(tempfile.mkdtemp(prefix="agent-bench-fuzz-"))
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    keys = {scope: create_key(home, scope) for scope in ("chat", "feedback", "monitor", "review", "operator", "admin")}
    port = free_port()
    server = start_server(home, port)
    total, failed = 0, []
    try:
        for scope, key in [("no key", None), *keys.items()]:
            n, failures = fuzz(port, key, args.examples, work / f"{scope.replace(' ', '-')}.ndjson")
            total += n
            failed += failures
            print(f"{scope}: {n:,} requests, {len(failures)} failures", flush=True)
            for f in failures[:10]:
                print("   ", f[:500])
        print(f"server peak RSS: {peak_rss_mb(server.pid):.0f} MB; server still up: {server.poll() is None}")
    finally:
        server.terminate()
        server.wait(60)
    print(f"total: {total:,} generated requests, {len(failed)} failures; integrity_check: {stored(home)[2]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
