"""Soak both faces with Postfix's smtp-source: zero lost messages, flat RSS.

    python soak/run.py --messages 1000000            # both faces
    python soak/run.py --messages 100000 --faces legacy

Each face runs as its own CLI in a subprocess with a counting sink
(soak/counting.py); ``smtp-source -c -d -s 20 -m N -l 500`` sends N
messages of 500 bytes over 20 parallel sessions.  The server's RSS is
sampled every few seconds.  Passes when smtp-source succeeded and the
server's program received exactly N messages; prints a table and writes
the samples as JSON.  Not part of the test suite (minutes per face).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

SERVERS = {
    "modern": ["-m", "smtpd_compat.modern", "-n", "-c", "counting.ModernCounter", "-l", "127.0.0.1:{port}"],
    "legacy": ["-m", "smtpd_compat", "-n", "-c", "counting.LegacyCounter", "127.0.0.1:{port}"],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def read_count(path: str) -> int:
    try:
        with open(path) as counted:
            return int(counted.read() or 0)
    except FileNotFoundError:
        return 0


def wait_listening(port: int, server: "subprocess.Popen[bytes]") -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("server exited with status %s" % server.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not listen on %d" % port)


def soak(face: str, messages: int, sessions: int, length: int, every: float) -> Dict[str, object]:
    port = free_port()
    work = tempfile.mkdtemp(prefix="soak-")
    count_file = os.path.join(work, "delivered")
    env = dict(os.environ, SOAK_COUNT_FILE=count_file)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    argv = [sys.executable] + [arg.format(port=port) for arg in SERVERS[face]]
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    samples: List[Dict[str, float]] = []
    try:
        wait_listening(port, server)
        start = time.monotonic()
        samples.append({"t": 0.0, "rss_kib": rss_kib(server.pid), "delivered": 0})
        source = subprocess.Popen(
            ["smtp-source", "-c", "-d", "-s", str(sessions), "-m", str(messages), "-l", str(length),
             "127.0.0.1:%d" % port],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        while source.poll() is None:
            try:
                source.wait(every)
            except subprocess.TimeoutExpired:
                pass
            samples.append({"t": round(time.monotonic() - start, 1), "rss_kib": rss_kib(server.pid),
                            "delivered": read_count(count_file)})
            print("%s  %6.0f s  %9d delivered  RSS %6d KiB" % (face, samples[-1]["t"], samples[-1]["delivered"],
                                                                samples[-1]["rss_kib"]), flush=True)
        elapsed = time.monotonic() - start
        errors = source.stderr.read().decode(errors="replace") if source.stderr else ""
        end_rss = rss_kib(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    delivered = read_count(count_file)
    shutil.rmtree(work)
    # The first sample after warm-up (caches, first allocations) is the baseline for "flat".
    warm = next((s for s in samples if s["delivered"] >= messages * 0.05), samples[-1])
    result: Dict[str, object] = {
        "face": face,
        "python": sys.version.split()[0],
        "messages": messages,
        "delivered": delivered,
        "lost": messages - delivered,
        "smtp_source_status": source.returncode,
        "smtp_source_errors": errors.strip()[-2000:],
        "seconds": round(elapsed, 1),
        "messages_per_second": round(messages / elapsed),
        "rss_start_kib": samples[0]["rss_kib"],
        "rss_after_warmup_kib": warm["rss_kib"],
        "rss_max_kib": max(s["rss_kib"] for s in samples),
        "rss_end_kib": end_rss,
        "samples": samples,
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages per face (default 1,000,000)")
    parser.add_argument("--faces", nargs="+", choices=sorted(SERVERS), default=["modern", "legacy"])
    parser.add_argument("--sessions", type=int, default=20, help="parallel smtp-source sessions")
    parser.add_argument("--length", type=int, default=500, help="message length in bytes")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--json", default=None, help="write the results here (default: soak/results.json)")
    args = parser.parse_args()
    if shutil.which("smtp-source") is None:
        print("smtp-source not found (apt-get install postfix)", file=sys.stderr)
        return 2
    results = [soak(face, args.messages, args.sessions, args.length, args.every) for face in args.faces]
    out_path = Path(args.json) if args.json else HERE / "results.json"
    out_path.write_text(json.dumps(results, indent=1))
    print()
    print("| face | messages | delivered | lost | seconds | msg/s | RSS start | after warm-up | max | end |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    failed = False
    for r in results:
        print("| {face} | {messages} | {delivered} | {lost} | {seconds} | {messages_per_second} | {rss_start_kib} KiB "
              "| {rss_after_warmup_kib} KiB | {rss_max_kib} KiB | {rss_end_kib} KiB |".format(**r))
        if r["lost"] or r["smtp_source_status"]:
            failed = True
            print("FAILED %s: smtp-source status %s %s" % (r["face"], r["smtp_source_status"], r["smtp_source_errors"]))
    print("samples: %s" % out_path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
