#!/usr/bin/env python3
"""Benchmark smtpd_compat against aiosmtpd 1.4.6 and Python 3.11's stdlib smtpd.

One invocation runs every selected workload for N rounds; within a round each
server gets its own fresh process, in a fixed order (A B C A B C ...), so the
paired per-round ratios compare runs taken moments apart on a noisy machine.
Usage and the meaning of every field: bench/README.md.  Linux only (/proc).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from types import FrameType
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from report import HEADLINE, failure_notes, paired_ratios, ratio_table, workload_table
from server_process import ServerDidNotStart, ServerProcess
from smtp_probe import HOST, ProbeError
from workloads import IdleWorkload, SourceWorkload, run_idle, run_source

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
SINKS_DIR = os.path.join(BENCH_DIR, "servers")

# {PYTHON} runs this project, {REF_PYTHON} the references, {PORT} is filled per run
SERVER_COMMANDS = {
    "compat-modern": "{PYTHON} -m smtpd_compat.modern -n -c smtpd_compat.modern.handlers.Sink -l 127.0.0.1:{PORT}",
    "compat-modern-2w": "{PYTHON} -m smtpd_compat.modern -n -c smtpd_compat.modern.handlers.Sink -l 127.0.0.1:{PORT}"
                        " --workers 2",
    "compat-modern-uvloop": "{PYTHON} -m smtpd_compat.modern -n -c smtpd_compat.modern.handlers.Sink"
                            " -l 127.0.0.1:{PORT} --loop uvloop",
    "compat-legacy": "{PYTHON} -m smtpd_compat -n -c compat_sink.Sink 127.0.0.1:{PORT}",
    "aiosmtpd": "{REF_PYTHON} -m aiosmtpd -n -c aiosmtpd.handlers.Sink -l 127.0.0.1:{PORT}",
    "stdlib": "{REF_PYTHON} -W ignore -m smtpd -n -c stdlib_sink.Sink 127.0.0.1:{PORT}",
    "asyncio-floor": "{PYTHON} -m asyncio_floor 127.0.0.1:{PORT}",
}
PROJECT_SERVERS = ("compat-modern", "compat-legacy")
REFERENCE_SERVERS = ("aiosmtpd", "stdlib")
# Compared with each other, not with the references: two worker processes over one, uvloop over asyncio's
# loop, and the modern face over the event loop's own ceiling (below 1: slower).
VARIANT_RATIOS = (
    ("compat-modern-2w", "compat-modern"),
    ("compat-modern-uvloop", "compat-modern"),
    ("compat-modern", "asyncio-floor"),
)
DEFAULT_SERVERS = ("compat-modern", "compat-legacy", "aiosmtpd", "stdlib")

# unscaled sizes and time caps (seconds); --scale multiplies counts (at least one message
# per session) and caps alike
SOURCE_WORKLOADS = {
    "persistent": dict(sessions=20, messages=20000, length=1000, persistent=True, cap_s=90.0),
    "churn": dict(sessions=20, messages=10000, length=1000, persistent=False, cap_s=60.0),
    "bulk": dict(sessions=2, messages=20, length=10_000_000, persistent=True, cap_s=120.0),
}
IDLE_CAP_S = 180.0
MIN_CAP_S = 10.0
WORKLOAD_ORDER = ("persistent", "churn", "bulk", "idle")
FD_HEADROOM = 1024  # beyond the idle connections: listener, logs, imports, the fresh client

Workload = Union[SourceWorkload, IdleWorkload]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def comma_list(text: str, allowed: Sequence[str]) -> List[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise argparse.ArgumentTypeError("choose from %s (got %r)" % (",".join(allowed), text))
    return items


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds; each round runs every server once per workload")
    p.add_argument("--workloads", type=lambda s: comma_list(s, WORKLOAD_ORDER), default=list(WORKLOAD_ORDER),
                   help="comma list of " + ",".join(WORKLOAD_ORDER))
    p.add_argument("--servers", type=lambda s: comma_list(s, list(SERVER_COMMANDS)),
                   default=list(DEFAULT_SERVERS), help="comma list of " + ",".join(SERVER_COMMANDS))
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply message counts, idle connections and time caps (caps never below %.0f s)"
                   % MIN_CAP_S)
    p.add_argument("--out", help="JSON lines file (default bench/results/bench-<timestamp>.jsonl)")
    p.add_argument("--python", default="python3.11", help="interpreter for the smtpd_compat servers")
    p.add_argument("--ref-python", default="python3.11",
                   help="interpreter for aiosmtpd and stdlib smtpd (needs aiosmtpd 1.4.6 and a stdlib smtpd)")
    p.add_argument("--cmd", action="append", default=[], metavar="NAME=COMMAND",
                   help="replace a server's bash command; placeholders {PORT} {PYTHON} {REF_PYTHON}")
    p.add_argument("--idle-conns", type=int, default=10000, help="idle connections before --scale")
    p.add_argument("--idle-inflight", type=int, default=4,
                   help="idle handshakes in flight (stdlib smtpd listens with backlog 5)")
    p.add_argument("--cap", type=float, help="override every workload's time cap, seconds")
    p.add_argument("--start-timeout", type=float, default=20.0, help="seconds to wait for a 220 greeting")
    p.add_argument("--smtp-source", default=shutil.which("smtp-source") or "/usr/sbin/smtp-source")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.scale <= 0 or args.idle_conns < 1 or args.idle_inflight < 1:
        p.error("--rounds, --scale, --idle-conns and --idle-inflight must be positive")
    for override in args.cmd:
        name, sep, command = override.partition("=")
        if not sep or name not in SERVER_COMMANDS or "{PORT}" not in command:
            p.error("--cmd wants NAME=COMMAND with NAME in %s and {PORT} in COMMAND" % ",".join(SERVER_COMMANDS))
    return args


def build_workloads(args: argparse.Namespace) -> Dict[str, Workload]:
    def cap(base: float) -> float:
        return float(args.cap) if args.cap else max(MIN_CAP_S, base * float(args.scale))

    workloads: Dict[str, Workload] = {}
    for name in args.workloads:
        if name == "idle":
            workloads[name] = IdleWorkload(conns=max(1, round(args.idle_conns * args.scale)),
                                           inflight=args.idle_inflight, cap_s=cap(IDLE_CAP_S))
        else:
            spec = SOURCE_WORKLOADS[name]
            workloads[name] = SourceWorkload(
                name=name, sessions=int(spec["sessions"]), length=int(spec["length"]),
                messages=max(int(spec["sessions"]), round(spec["messages"] * args.scale)),
                persistent=bool(spec["persistent"]), cap_s=cap(float(spec["cap_s"])))
    return workloads


def resolve_python(spec: str) -> Tuple[str, Optional[str]]:
    """(absolute executable, version), so pyenv shims and venvs are recorded for what they are."""
    try:
        out = subprocess.run([spec, "-c", "import sys,platform;print(sys.executable);print(platform.python_version())"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.split("\n")
        return out[0], out[1]
    except (OSError, subprocess.SubprocessError, IndexError):
        return spec, None  # the server start will fail and say why


def raise_own_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_env() -> Dict[str, str]:
    path = [REPO_DIR, SINKS_DIR] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def run_once(name: str, command: str, workload: Workload, args: argparse.Namespace,
             scratch: str, nofile: int) -> Dict[str, Any]:
    """Fresh server, one workload, server stopped: one result record."""
    port = free_port()
    record: Dict[str, Any] = {"command": command.replace("{PORT}", str(port))}
    server = ServerProcess(record["command"], env=server_env(), cwd=scratch, nofile=nofile,
                           log_path=os.path.join(scratch, "%s-%s-%d.log" % (name, workload.name, port)))
    try:
        server.wait_ready(port, args.start_timeout)
        record["server_nofile"] = server.nofile_limit()
        if isinstance(workload, IdleWorkload):
            record.update(run_idle(server, port, workload))
        else:
            output = os.path.join(scratch, "smtp-source-%d.out" % port)
            record.update(run_source(server, port, workload, args.smtp_source, output))
        if not server.alive() and record["status"] != "server_died":
            record["status"] = "server_died"
            record["server_log_tail"] = server.log_tail()
    except ServerDidNotStart as exc:
        record.update(status="no_start", error=str(exc))
    except (OSError, ProbeError) as exc:
        record.update(status="error", error=repr(exc), server_log_tail=server.log_tail())
    finally:
        server.sample()
        record["server_peak_rss_kib"] = server.peak_hwm_kib or None
        server.stop()
    return record


def headline(record: Dict[str, Any]) -> str:
    key, label, _ = HEADLINE[record["workload"]]
    value = record.get(key)
    return "%s %s" % ("–" if value is None else value, label)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not os.path.exists(args.smtp_source) and any(w != "idle" for w in args.workloads):
        log("smtp-source not found (%s); install Postfix or pass --smtp-source" % args.smtp_source)
        return 2
    workloads = build_workloads(args)
    idle = workloads.get("idle")
    nofile = raise_own_nofile((idle.conns if isinstance(idle, IdleWorkload) else 0) + FD_HEADROOM)
    python, python_version = resolve_python(args.python)
    ref_python, ref_version = resolve_python(args.ref_python)
    templates = dict(SERVER_COMMANDS, **dict(o.split("=", 1) for o in args.cmd))
    commands = {name: templates[name].replace("{PYTHON}", python).replace("{REF_PYTHON}", ref_python)
                for name in args.servers}
    out_path = args.out or os.path.join(BENCH_DIR, "results", time.strftime("bench-%Y%m%d-%H%M%S.jsonl"))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)

    def on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt  # unwinds through run_once's finally, which stops the server

    signal.signal(signal.SIGTERM, on_sigterm)
    meta = {"type": "meta", "ts": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(),
            "cpus": os.cpu_count(), "kernel": platform.release(), "python": python,
            "python_version": python_version, "ref_python": ref_python, "ref_python_version": ref_version,
            "rounds": args.rounds, "scale": args.scale, "nofile": nofile, "servers": commands,
            "workloads": {name: w.describe() for name, w in workloads.items()}}
    records: List[Dict[str, Any]] = []
    ratios: List[Dict[str, Any]] = []
    interrupted = False
    with open(out_path, "a") as out, tempfile.TemporaryDirectory(prefix="smtpd-compat-bench-") as scratch:
        out.write(json.dumps(meta) + "\n")
        try:
            for wl_name, workload in workloads.items():
                for rnd in range(args.rounds):
                    for name in args.servers:
                        record = {"type": "run", "ts": time.strftime("%Y-%m-%dT%H:%M:%S"), "round": rnd,
                                  "workload": wl_name, "server": name}
                        record.update(run_once(name, commands[name], workload, args, scratch, nofile))
                        records.append(record)
                        out.write(json.dumps(record) + "\n")
                        out.flush()
                        log("[%s round %d/%d] %-13s %-12s %s" % (wl_name, rnd + 1, args.rounds, name,
                                                                 record["status"], headline(record)))
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted; reporting what completed")
        pairs = [(p, r) for p in PROJECT_SERVERS for r in REFERENCE_SERVERS] + list(VARIANT_RATIOS)
        for wl_name in workloads:
            for numerator, denominator in pairs:
                if numerator in args.servers and denominator in args.servers:
                    ratio = paired_ratios(records, wl_name, numerator, denominator)
                    if ratio is not None:
                        ratios.append(ratio)
                        out.write(json.dumps(ratio) + "\n")
    print_markdown(meta, workloads, records, ratios, args.servers, out_path)
    return 130 if interrupted else 0


def print_markdown(meta: Dict[str, Any], workloads: Dict[str, Workload], records: List[Dict[str, Any]],
                   ratios: List[Dict[str, Any]], servers: Sequence[str], out_path: str) -> None:
    lines = ["# smtpd_compat benchmark %s" % meta["ts"], "",
             "%s CPUs, Linux %s; smtpd_compat on %s (%s), references on %s (%s); %d round(s), scale %g. "
             "Cells: median [min–max]. Raw runs: `%s`." % (
                 meta["cpus"], meta["kernel"], meta["python"], meta["python_version"], meta["ref_python"],
                 meta["ref_python_version"], meta["rounds"], meta["scale"], out_path)]
    for name, workload in workloads.items():
        lines += ["", "## %s: %s" % (name, workload.describe()), ""]
        lines += workload_table(records, name, servers)
    lines += ["", "## Ratios smtpd_compat / reference (headline metric)", ""]
    lines += ratio_table(ratios) if ratios else ["(no pair of runs with values on both sides)"]
    notes = failure_notes(records)
    if notes:
        lines += ["", "## Failures (first per server and status)", ""] + notes
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
