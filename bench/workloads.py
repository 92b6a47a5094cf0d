"""The four workloads; each returns a flat dict of measurements for one run.

persistent / churn / bulk are driven by Postfix's smtp-source (a C client, so
the client is rarely the bottleneck); idle is driven here because it needs
thousands of simultaneous half-finished sessions.
"""
from __future__ import annotations

import re
import resource
import selectors
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from server_process import ServerProcess
from smtp_probe import CLIENT_NAME, HOST, ProbeError, full_transaction, parse_reply

POLL_S = 0.5                # how often a running workload samples the server
CLIENT_STOP_GRACE_S = 5.0
IDLE_SAMPLE_EVERY = 500     # RSS sample cadence while opening idle connections
IDLE_HANDSHAKE_TIMEOUT_S = 15.0
IDLE_MAX_FAILURES = 50      # give up opening once the server clearly refuses
WARMUP_SETTLE_S = 0.5
COUNTER = re.compile(rb"(\d+)\r")

Result = Dict[str, Any]


@dataclass(frozen=True)
class SourceWorkload:
    """One smtp-source invocation: -s sessions, -m messages of -l bytes."""
    name: str
    sessions: int
    messages: int
    length: int
    persistent: bool  # -d: many messages per connection
    cap_s: float

    def client_args(self) -> List[str]:
        args = ["-c", "-s", str(self.sessions), "-m", str(self.messages), "-l", str(self.length),
                "-M", CLIENT_NAME.decode(), "-f", "bench@example.com", "-t", "sink@example.com"]
        if self.persistent:
            args.insert(1, "-d")
        return args

    def describe(self) -> str:
        return "smtp-source %s 127.0.0.1:PORT (cap %.0f s)" % (" ".join(self.client_args()), self.cap_s)


@dataclass(frozen=True)
class IdleWorkload:
    """Open `conns` sessions (220 + EHLO each), hold them, then probe the server."""
    conns: int
    inflight: int     # handshakes in progress at once; <= 5 keeps listen(5) servers from overflowing
    cap_s: float      # for opening all connections
    settle_s: float = 2.0
    fresh_timeout_s: float = 5.0
    name: str = field(default="idle")

    def describe(self) -> str:
        return ("%d connections, 220+EHLO each, %d handshakes in flight (cap %.0f s), "
                "then one fresh full transaction (limit %.0f s)"
                % (self.conns, self.inflight, self.cap_s, self.fresh_timeout_s))


def _stop_client(client: "subprocess.Popen[bytes]") -> None:
    """Stop our smtp-source child (by its pid, through the Popen handle)."""
    if client.poll() is not None:
        return
    client.terminate()
    try:
        client.wait(timeout=CLIENT_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        client.kill()
        client.wait()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_source(server: ServerProcess, port: int, wl: SourceWorkload, smtp_source: str,
               output_path: str) -> Result:
    before = server.sample()
    # smtp-source is the only child reaped in this window (the server is
    # reaped after the run), so the children's rusage delta is the client's.
    client_before = _children_cpu_s()
    with open(output_path, "wb") as output:
        started = time.perf_counter()
        client = subprocess.Popen([smtp_source] + wl.client_args() + ["%s:%d" % (HOST, port)],
                                  stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        try:
            status = ""
            while not status:
                try:
                    # wait() rather than sleep(): wall time ends the moment the client does
                    exit_status = client.wait(timeout=POLL_S)
                    status = "ok" if exit_status == 0 else "client_error"
                except subprocess.TimeoutExpired:
                    if server.sample() is None:
                        status = "server_died"
                    elif time.perf_counter() - started > wl.cap_s:
                        status = "timeout"
            wall_s = time.perf_counter() - started
        finally:
            _stop_client(client)
    after = server.sample() or server.last_sample
    with open(output_path, "rb") as f:
        text = f.read()
    counters = COUNTER.findall(text)
    # smtp-source -c prints the running count of completed messages, "N\r" each
    done = int(counters[-1]) if counters else 0
    result: Result = {
        "status": status, "wall_s": round(wall_s, 3), "messages_done": done,
        "msgs_per_s": round(done / wall_s, 1), "MB_per_s": round(done * wl.length / wall_s / 1e6, 2),
        "server_cpu_s": round(after.cpu_s - before.cpu_s, 3) if (before and after) else None,
        "client_cpu_s": round(_children_cpu_s() - client_before, 3),
    }
    if status != "ok":
        result["client_output_tail"] = text[-300:].decode("utf-8", "replace").replace("\r", " ").strip()
    return result


class _Handshake:
    __slots__ = ("sock", "phase", "buf", "started")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.phase = "greeting"
        self.buf = b""
        self.started = time.monotonic()


def _advance(hs: _Handshake) -> Optional[str]:
    """Feed one readable event; None = keep waiting, "idle" = done, else an error tag."""
    sock = hs.sock
    try:
        chunk = sock.recv(65536)
    except BlockingIOError:
        return None
    except OSError as exc:
        return type(exc).__name__
    if not chunk:
        return "closed_by_server"
    hs.buf += chunk
    try:
        code, hs.buf = parse_reply(hs.buf)
    except ProbeError:
        return "bad_reply"
    if code is None:
        return None
    if hs.phase == "greeting":
        if code != 220:
            return "greeting_%d" % code
        hs.phase = "ehlo"
        command = b"EHLO " + CLIENT_NAME + b"\r\n"
        try:
            sent = sock.send(command)  # tiny write into an empty buffer: never partial in practice
        except OSError as exc:
            return type(exc).__name__
        return None if sent == len(command) else "short_send"
    return "idle" if code == 250 else "ehlo_%d" % code


def _open_idle(server: ServerProcess, port: int, wl: IdleWorkload, rss_base_kib: int
               ) -> Tuple[List[socket.socket], Dict[str, int], List[Tuple[int, float]]]:
    """Returns (established sockets, error tags, [(established, KiB/conn so far)])."""
    selector = selectors.DefaultSelector()
    idle: List[socket.socket] = []
    errors: Counter[str] = Counter()
    slope: List[Tuple[int, float]] = []
    to_open = wl.conns
    deadline = time.monotonic() + wl.cap_s
    try:
        while (to_open or selector.get_map()) and time.monotonic() < deadline:
            if not server.alive() or sum(errors.values()) >= IDLE_MAX_FAILURES:
                break
            while to_open and len(selector.get_map()) < wl.inflight:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.connect_ex((HOST, port))  # refusal surfaces as a read error
                selector.register(sock, selectors.EVENT_READ, _Handshake(sock))
                to_open -= 1
            for key, _ in selector.select(timeout=0.2):
                hs = key.data
                outcome = _advance(hs)
                if outcome is None:
                    continue
                selector.unregister(hs.sock)
                if outcome != "idle":
                    errors[outcome] += 1
                    hs.sock.close()
                    continue
                idle.append(hs.sock)
                if len(idle) % IDLE_SAMPLE_EVERY == 0:
                    now = server.sample()
                    if now is not None:
                        slope.append((len(idle), round((now.rss_kib - rss_base_kib) / len(idle), 2)))
            now_t = time.monotonic()
            for key in list(selector.get_map().values()):
                if now_t - key.data.started > IDLE_HANDSHAKE_TIMEOUT_S:
                    errors["handshake_timeout"] += 1
                    selector.unregister(key.data.sock)
                    key.data.sock.close()
    finally:
        for key in list(selector.get_map().values()):
            selector.unregister(key.data.sock)
            key.data.sock.close()
        selector.close()
    return idle, dict(errors), slope


def _count_still_open(socks: List[socket.socket]) -> int:
    """Connections the server has not closed (a server that drops idlers looks cheap)."""
    still_open = 0
    for sock in socks:
        try:
            still_open += 1 if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) else 0
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
    return still_open


def run_idle(server: ServerProcess, port: int, wl: IdleWorkload) -> Result:
    full_transaction(port, timeout=wl.fresh_timeout_s)  # warm lazy imports and first-use allocations
    time.sleep(WARMUP_SETTLE_S)
    base = server.sample()
    if base is None:
        return {"status": "server_died", "error": "server exited during warm-up"}
    started = time.monotonic()
    idle, errors, slope = _open_idle(server, port, wl, base.rss_kib)
    try:
        open_s = time.monotonic() - started
        time.sleep(wl.settle_s)
        held = server.sample()
        result: Result = {"conns_requested": wl.conns, "established": len(idle), "errors": errors,
                          "open_s": round(open_s, 2), "rss_base_kib": base.rss_kib, "kib_per_conn_slope": slope}
        if held is None:
            # died mid-way (e.g. select() past FD_SETSIZE): keep the slope measured while it lived
            result.update(status="server_died", server_log_tail=server.log_tail(),
                          kib_per_conn=slope[-1][1] if slope else None,
                          kib_per_conn_source="last sample before the server died")
            last = server.last_sample
            result["server_cpu_s"] = round(last.cpu_s - base.cpu_s, 3) if last else None
            return result
        result.update(rss_idle_kib=held.rss_kib,
                      kib_per_conn=round((held.rss_kib - base.rss_kib) / len(idle), 2) if idle else None,
                      kib_per_conn_source="after settle")
        try:
            result["fresh_ms"] = round(1000 * full_transaction(port, timeout=wl.fresh_timeout_s), 2)
            result["fresh_ok"] = True
        except (OSError, ProbeError) as exc:
            result.update(fresh_ok=False, fresh_error=repr(exc)[:200])
        result["still_open"] = _count_still_open(idle)
        after = server.sample() or held
        result["server_cpu_s"] = round(after.cpu_s - base.cpu_s, 3)
        complete = len(idle) == wl.conns and result["fresh_ok"] and result["still_open"] == len(idle)
        result["status"] = "ok" if complete else "degraded"
        return result
    finally:
        for sock in idle:
            sock.close()
