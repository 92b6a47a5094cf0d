"""A server for the worker, drain and PROXY-allowlist tests, run as a script:
``python tests/modern/_worker_server.py --workers 2 --listen 127.0.0.1:0``.

Prints ``listening <port>`` once every worker serves.  The handler answers
NOOP and DATA with its worker's pid, VRFY with its event loop's module; with ``--crash-when FILE`` a worker
started while FILE exists dies at once (a crash-looping worker).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any


class PidHandler:
    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: Any) -> str:
        return f"250 pid {os.getpid()}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return f"250 OK pid {os.getpid()}"

    async def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
        return f"252 loop {type(asyncio.get_running_loop()).__module__}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--reuse-port", choices=("auto", "yes", "no"), default="auto")
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--proxy-timeout", type=float)
    parser.add_argument("--trust")
    parser.add_argument("--crash-when")
    parser.add_argument("--lmtp", action="store_true")
    parser.add_argument("--loop", default="asyncio")
    args = parser.parse_args()

    from smtpd_compat.modern.lmtp import LMTP
    from smtpd_compat.modern.smtp import SMTP
    from smtpd_compat.modern.workers import Listeners, serve

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(process)d %(levelname)s %(message)s")

    def ready(listeners: Listeners) -> None:
        print("listening", listeners.port, flush=True)

    def worker_init() -> None:
        if args.crash_when and os.path.exists(args.crash_when):
            raise SystemExit(3)

    host, _, port = args.listen.rpartition(":")
    return serve(
        PidHandler,
        host,
        int(port),
        workers=args.workers,
        reuse_port={"auto": None, "yes": True, "no": False}[args.reuse_port],
        drain_timeout=args.drain_timeout,
        proxy_protocol_timeout=args.proxy_timeout,
        proxy_trusted_networks=args.trust,
        hostname="mx.test",
        smtp_class=LMTP if args.lmtp else SMTP,
        ready=ready,
        worker_init=worker_init,
        min_uptime=1.0,
        crash_limit=3,
        loop=args.loop,
    )


if __name__ == "__main__":
    sys.exit(main())
