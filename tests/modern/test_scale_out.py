"""Scale-out across hosts, end to end: a real HAProxy balancing
``send-proxy-v2`` over two backend "hosts", each the server with two
workers and a PROXY allowlist holding only HAProxy's address, each storing
into its own Maildir.  The hosts are network namespaces joined by veth
pairs, built here and removed afterwards (so the traffic never leaves
them); this needs root, as in CI.

The backends run the README's command line (``-w 2 --proxy-from``).  Load
goes through HAProxy; one backend host is killed (SIGKILL to every process
in its namespace) mid-load.  Then: every message that got 250 is in exactly one
backend's store, no message is stored twice, a message whose transaction
was cut got no 250, and the surviving backend kept accepting.
"""

from __future__ import annotations

import contextlib
import mailbox
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from tests.portability._children import TerminalServer
from tests.portability._platforms import REPO_ROOT, child_env

CLIENT = Path(__file__).with_name("_scale_client.py")

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="network namespaces are Linux only"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2's ip is not installed"),
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed"),
    pytest.mark.skipif(os.name == "posix" and os.geteuid() != 0, reason="ip netns needs root (CAP_SYS_ADMIN)"),
]

# Addresses and ports live inside private namespaces, so fixed values
# cannot collide with anything on the host or with a parallel run.
SUBNET = "10.89.{backend}.{host}"
SMTP_PORT = 25
FRONTEND_PORT = 2525
MESSAGES = 300

HAPROXY_CONFIG = """\
global
    maxconn 200
defaults
    mode tcp
    retries 3
    option redispatch 1
    timeout connect 1s
    timeout client 10s
    timeout server 10s
frontend smtp
    bind 127.0.0.1:{frontend}
    default_backend hosts
backend hosts
    balance roundrobin
    server b1 {b1}:{port} send-proxy-v2
    server b2 {b2}:{port} send-proxy-v2
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Network:
    """The balancer's namespace and two backend namespaces, each backend
    reached over its own veth pair."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)  # unique per run; interface names <= 15 chars
        self.balancer = f"smtplb-{self.tag}"
        self.backends = [f"smtpb{n}-{self.tag}" for n in (1, 2)]
        self.namespaces: List[str] = []

    def build(self) -> None:
        tag = self.tag
        for name in [self.balancer, *self.backends]:
            ip("netns", "add", name)
            self.namespaces.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        for n, backend in enumerate(self.backends, 1):
            near, far = f"v{tag}l{n}", f"v{tag}b{n}"
            ip("link", "add", near, "netns", self.balancer, "type", "veth", "peer", "name", far, "netns", backend)
            ip("-n", self.balancer, "addr", "add", self.address(n, 1) + "/24", "dev", near)
            ip("-n", backend, "addr", "add", self.address(n, 2) + "/24", "dev", far)
            ip("-n", self.balancer, "link", "set", near, "up")
            ip("-n", backend, "link", "set", far, "up")
        # Not HAProxy's source address: a direct client the allowlist refuses.
        ip("-n", self.balancer, "addr", "add", self.address(1, 3) + "/24", "dev", f"v{tag}l1")

    @staticmethod
    def address(backend: int, host: int) -> str:
        return SUBNET.format(backend=backend, host=host)

    def run_in(self, namespace: str) -> List[str]:
        return ["ip", "netns", "exec", namespace]

    def remove(self) -> None:
        for name in self.namespaces:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@pytest.fixture
def network() -> Iterator[Network]:
    probe = subprocess.run(["ip", "netns", "add", f"smtpprobe-{secrets.token_hex(3)}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create network namespaces here: {probe.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe.args[3]], capture_output=True)
    net = Network()
    try:
        net.build()
        yield net
    finally:
        net.remove()  # whatever part of it was built


def stored_ids(maildir: Path) -> List[int]:
    """The test ids in a backend's store; each message must name the real
    client (from the PROXY header), not HAProxy."""
    messages = list(mailbox.Maildir(str(maildir), create=False))
    assert {message["X-Client"] for message in messages} <= {"127.0.0.1"}
    return [int(message["X-Test-Id"]) for message in messages]


def backend_command(network: Network, n: int, store: Path) -> List[str]:
    """The README's backend command line, in backend ``n``'s namespace."""
    return [*network.run_in(network.backends[n - 1]), sys.executable, "-m", "smtpd_compat.modern", "-n",
            "-l", f"{network.address(n, 2)}:{SMTP_PORT}", "-w", "2", "--proxy-from", network.address(n, 1),
            "-c", "tests.modern._pid_classes.ProxyMailbox", str(store)]


def kill_host(namespace: str) -> None:
    """SIGKILL every process of a namespace at once, as if its host died."""
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=30).stdout
    for pid in pids.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def test_haproxy_over_two_hosts_with_workers(network: Network, tmp_path: Path) -> None:
    stores = [tmp_path / f"store{n}" for n in (1, 2)]
    processes: List[TerminalServer] = []
    haproxy = None
    try:
        for n, store in enumerate(stores, 1):
            processes.append(TerminalServer(backend_command(network, n, store), cwd=REPO_ROOT))
        config = tmp_path / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.format(
            frontend=FRONTEND_PORT, port=SMTP_PORT, b1=network.address(1, 2), b2=network.address(2, 2)))
        haproxy = subprocess.Popen([*network.run_in(network.balancer), "haproxy", "-f", str(config), "-db"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

        # A client that is not HAProxy may not claim an address.
        probe = subprocess.run(
            [*network.run_in(network.balancer), sys.executable, str(CLIENT), "probe",
             network.address(1, 2), str(SMTP_PORT), network.address(1, 3)],
            capture_output=True, text=True, env=child_env(), timeout=30, cwd=REPO_ROOT)
        assert probe.stdout.strip() == "b''", probe.stderr

        fates = drive_load(network, network.backends[0])
    finally:
        if haproxy is not None:
            os.killpg(haproxy.pid, signal.SIGKILL)
            haproxy.wait(10)
        for namespace in network.backends:
            kill_host(namespace)
        for process in processes:
            process.stop(signal.SIGKILL)

    acked = {n for n, fate in fates.items() if fate == "ok"}
    cut = {n for n, fate in fates.items() if fate == "cut"}
    assert set(fates.values()) <= {"ok", "cut"}, fates
    first, second = (stored_ids(store) for store in stores)
    assert len(first) == len(set(first)) and len(second) == len(set(second)), "a message stored twice"
    assert not set(first) & set(second), "a message stored by both backends"
    assert acked <= set(first) | set(second), "a 250 for a message no backend stored"
    # Stored without a 250 happens only for a message the killed backend
    # wrote just before it died; its client saw the connection cut.
    assert (set(first) | set(second)) - acked <= cut
    assert first and second, "HAProxy used only one backend"
    survivors_after_kill = {n for n in acked if n in second and n > max(first)}
    assert survivors_after_kill, "nothing was accepted after the kill"
    assert cut, "the kill cut no transaction"
    print(f"{len(acked)} accepted ({len(first)} + {len(second)} stored), {len(cut)} cut")


def drive_load(network: Network, victim: str) -> Dict[int, str]:
    """Run the load; kill the host ``victim`` once a third of the messages got 250.
    Returns each message's fate."""
    client = subprocess.Popen(
        [*network.run_in(network.balancer), sys.executable, str(CLIENT), "load", "127.0.0.1", str(FRONTEND_PORT),
         "--messages", str(MESSAGES), "--threads", "6", "--per-session", "5", "--cap", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(), cwd=REPO_ROOT)
    fates: Dict[int, str] = {}
    killed_at = None
    assert client.stdout is not None
    for line in client.stdout:
        fate, number = line.split()
        assert int(number) not in fates, f"message {number} reported twice"
        fates[int(number)] = fate
        if killed_at is None and sum(f == "ok" for f in fates.values()) >= MESSAGES // 3:
            kill_host(victim)
            killed_at = time.monotonic()
    assert client.wait(60) == 0, client.stderr.read() if client.stderr else ""
    assert killed_at is not None, fates
    return fates
