"""The ``python -m smtpd_compat.modern`` command line, flag for flag with aiosmtpd's.

Differences from aiosmtpd 1.4.6: SIGTERM stops the server as cleanly as
SIGINT (exit status 0), also where the loop cannot handle signals itself
(Windows); open client connections are closed on the way out; the privilege
drop to ``nobody`` happens after binding, so privileged ports such as 25 work
when started as root.  A busy port, a class that cannot be found or a legacy
``smtpd`` server class given to ``-c`` get a one-line error and exit status 1
instead of a traceback; ``-l [::1]:8025`` (a bracketed IPv6 host) is
accepted besides aiosmtpd's ``::1:8025``; ``-c`` also finds modules in the
current directory when run as the ``smtpd-compat-modern`` script.  When
stderr is a terminal, one line there says where the server listens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from argparse import ArgumentParser, ArgumentTypeError, Namespace
from contextlib import suppress
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, NoReturn, Optional, Sequence, Tuple, Type

from smtpd_compat.common.address import MAX_PORT, split_bracketed
from smtpd_compat.common.classpath import import_class
from smtpd_compat.common.console import announce_listening
from smtpd_compat.common.loops import DEFAULT_LOOP, LOOP_NAMES, LoopFactory, LoopUnavailable, loop_factory
from smtpd_compat.common.signals import draining
from smtpd_compat.common.tls import server_tls_context
from smtpd_compat.modern import __version__
from smtpd_compat.modern.controller import BaseUnthreadedController, UnthreadedController
from smtpd_compat.modern.proxy_trust import TrustedNetworks, parse_networks, trusting
from smtpd_compat.modern.smtp import DATA_SIZE_DEFAULT, SMTP, make_loop
from smtpd_compat.modern.workers import DEFAULT_DRAIN_TIMEOUT, Listeners, drain_when_asked
from smtpd_compat.modern.workers import serve as serve_workers

pwd: Optional[ModuleType]
try:
    import pwd
except ImportError:  # Windows
    pwd = None

__all__ = ["main", "serve"]

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 8025
DEFAULT_CLASS = "smtpd_compat.modern.handlers.Debugging"
#: Seconds to wait for a PROXY header under --proxy-from.
DEFAULT_PROXY_TIMEOUT = 10.0

# "python -m smtpd_compat.modern" would otherwise show up as ".../__main__.py".
PROGRAM = "smtpd_compat.modern" if "__main__.py" in sys.argv[0] else os.path.basename(sys.argv[0])


#: The opt-in extensions' flags: (flag, extension, RFC); each sets
#: ``SMTP(..., enable_<extension>=True)``.  The legacy CLI takes the same.
EXTENSION_FLAGS = (
    ("--chunking", "CHUNKING", "RFC 3030"),
    ("--binarymime", "BINARYMIME", "RFC 3030, with --chunking"),
    ("--pipelining", "PIPELINING", "RFC 2920"),
    ("--enhancedstatuscodes", "ENHANCEDSTATUSCODES", "RFC 2034"),
    ("--dsn", "DSN", "RFC 3461"),
)


def extension_settings(options: Any) -> Dict[str, bool]:
    """The ``enable_<extension>`` keywords the flags turned on."""
    return {
        f"enable_{extension}": True
        for _, extension, _ in EXTENSION_FLAGS
        if getattr(options, f"enable_{extension}", False)
    }


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROGRAM, description="An RFC 5321 SMTP server with extensions.")
    parser.add_argument("-v", "--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-n",
        "--nosetuid",
        dest="setuid",
        default=True,
        action="store_false",
        help=(
            "This program generally tries to setuid ``nobody``, unless this "
            "flag is set.  The setuid call will fail if this program is not "
            "run as root (in which case, use this flag)."
        ),
    )
    parser.add_argument(
        "-c",
        "--class",
        dest="classpath",
        metavar="CLASSPATH",
        default=DEFAULT_CLASS,
        help=(
            "Use the given class, as a Python dotted import path, as the "
            "handler class for SMTP events.  This class can process "
            "received messages and do other actions during the SMTP "
            f"dialog.  Uses ``{DEFAULT_CLASS}`` by default."
        ),
    )
    parser.add_argument(
        "-s",
        "--size",
        metavar="SIZE",
        type=int,
        help=(
            "Restrict the total size of the incoming message to "
            "``SIZE`` number of bytes via the RFC 1870 SIZE extension. "
            f"Defaults to {DATA_SIZE_DEFAULT:,} bytes."
        ),
    )
    parser.add_argument(
        "-u",
        "--smtputf8",
        default=False,
        action="store_true",
        help="Enable the ``SMTPUTF8`` extension as defined in RFC 6531.",
    )
    parser.add_argument(
        "-d",
        "--debug",
        default=0,
        action="count",
        help="Increase debugging output. Every ``-d`` increases debugging level by one.",
    )
    parser.add_argument(
        "-l",
        "--listen",
        metavar="[HOST][:PORT]",
        nargs="?",
        default=None,
        help=(
            "Optional host and port to listen on.  If the ``PORT`` part is not "
            f"given, then port ``{DEFAULT_PORT}`` is used.  If only ``:PORT`` is "
            f"given, then ``{DEFAULT_HOST}`` is used for the hostname.  If neither "
            f"are given, ``{DEFAULT_HOST}:{DEFAULT_PORT}`` is used."
        ),
    )
    for flag, metavar, partner, what, protocol in (
        ("--smtpscert", "CERTFILE", "--smtpskey", "certificate file", "**SMTPS**"),
        ("--smtpskey", "KEYFILE", "--smtpscert", "key file", "**SMTPS**"),
        ("--tlscert", "CERTFILE", "--tlskey", "certificate file", "**STARTTLS**"),
        ("--tlskey", "KEYFILE", "--tlscert", "key file", "**STARTTLS**"),
    ):
        parser.add_argument(
            flag,
            metavar=metavar,
            type=Path,
            default=None,
            help=(
                f"The {what} for implementing {protocol}. If given, the parameter "
                f"``{partner}`` must also be specified."
            ),
        )
    parser.add_argument(
        "--no-requiretls",
        dest="requiretls",
        default=True,
        action="store_false",
        help=(
            "If specified, disables ``require_starttls`` of the SMTP class. "
            "(By default, ``require_starttls`` is True.) "
            "Has no effect if ``--tlscert`` and ``--tlskey`` are not specified."
        ),
    )
    for flag, extension, rfc in EXTENSION_FLAGS:
        parser.add_argument(
            flag,
            dest=f"enable_{extension}",
            default=False,
            action="store_true",
            help=f"Offer the ``{extension}`` extension ({rfc}); off by default, as in aiosmtpd.",
        )
    add_scale_arguments(parser)
    parser.add_argument(
        "classargs",
        metavar="CLASSARGS",
        nargs="*",
        default=(),
        help="Additional arguments passed to the handler CLASS.",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ArgumentTypeError(f"invalid number (1 or more): {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise ArgumentTypeError(f"invalid number of seconds: {text!r}")
    return value


def _networks(text: str) -> TrustedNetworks:
    try:
        return parse_networks(text)
    except ValueError as error:
        raise ArgumentTypeError(f"invalid network: {error}") from None


def add_scale_arguments(parser: ArgumentParser) -> None:
    """The flags this project adds for running at scale (not aiosmtpd's)."""
    parser.add_argument(
        "-w",
        "--workers",
        metavar="N",
        type=_positive_int,
        default=1,
        help="Serve with N processes on one port (forked; not on Windows). Default 1.",
    )
    parser.add_argument(
        "--drain-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_DRAIN_TIMEOUT,
        help=(
            "On SIGTERM or SIGINT, let open transactions finish for up to SECONDS "
            f"(default {DEFAULT_DRAIN_TIMEOUT:g}); idle sessions get 421 at once. "
            "A second signal stops at once."
        ),
    )
    parser.add_argument(
        "--loop",
        choices=LOOP_NAMES,
        default=DEFAULT_LOOP,
        help=(
            f"The event loop to serve on (default {DEFAULT_LOOP}); uvloop needs "
            "pip install smtpd_compat[uvloop] (not on Windows)."
        ),
    )
    parser.add_argument(
        "--proxy-from",
        metavar="NETWORKS",
        type=_networks,
        default=None,
        help=(
            "Expect a PROXY protocol header on every connection, believed only from "
            "these comma-separated addresses or networks (e.g. 10.0.0.1,2001:db8::/32)."
        ),
    )
    parser.add_argument(
        "--proxy-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_PROXY_TIMEOUT,
        help=f"With --proxy-from: how long to wait for the header (default {DEFAULT_PROXY_TIMEOUT:g}).",
    )


def _check_cert_pair(
    parser: ArgumentParser, kind: str, cert: Optional[Path], key: Optional[Path]
) -> None:
    if bool(cert) ^ bool(key):
        parser.error(f"--{kind}cert and --{kind}key must be specified together")
    if cert and not cert.exists():
        parser.error(f"Cert file {cert} not found")
    if key and not key.exists():
        parser.error(f"Key file {key} not found")


def _fail(message: str, status: int = 1) -> NoReturn:
    """One line on stderr and exit: status 1 by default, for errors that are not in the command's syntax."""
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    sys.exit(status)


def _loop_factory(name: str) -> LoopFactory:
    """The factory of the loop ``--loop`` names; exit status 2 (a usage
    error, as argparse's) with one line when its package is missing."""
    try:
        return loop_factory(name)
    except LoopUnavailable as error:
        _fail(str(error), status=2)


def _is_legacy_server(cls: Any) -> bool:
    # By name, so this face never imports the legacy one (stdlib smtpd's
    # classes on Python <= 3.11 are recognised too).
    return isinstance(cls, type) and any(
        base.__name__ == "dispatcher" and base.__module__.rpartition(".")[2] == "asyncore" for base in cls.__mro__
    )


def _handler_class(classpath: str) -> Any:
    try:
        handler_class = import_class(classpath)
    except (ImportError, AttributeError, ValueError) as e:
        _fail(f"cannot find handler class {classpath}: {e}")
    if _is_legacy_server(handler_class):
        _fail(f"{classpath} is a legacy smtpd server class: serve it with python -m smtpd_compat -c {classpath}")
    return handler_class


def _host_port(parser: ArgumentParser, listen: Optional[str]) -> Tuple[str, int]:
    """aiosmtpd's ``[HOST][:PORT]`` (``::1:25`` keeps the colons of the host), or ``[IPv6]:PORT``."""
    if listen is None:
        return DEFAULT_HOST, DEFAULT_PORT
    bracketed = split_bracketed(listen)
    if bracketed is not None:
        host, rest = bracketed
        if rest and not rest.startswith(":"):
            parser.error(f"Invalid address: {listen}")
        port = rest[1:]
    else:
        host, colon, port = listen.rpartition(":")
        if not colon:
            return port, DEFAULT_PORT
    try:
        number = int(port) if port else DEFAULT_PORT
    except ValueError:
        parser.error(f"Invalid port number: {port}")
    if not 0 <= number <= MAX_PORT:
        parser.error(f"Invalid port number: {port} (ports are 0 to {MAX_PORT})")
    return host or DEFAULT_HOST, number


def parseargs(args: Optional[Sequence[str]] = None) -> Tuple[ArgumentParser, Namespace]:
    """Parse the command line and build the handler; errors exit via the parser."""
    parser = _parser()
    parsed = parser.parse_args(args)
    parsed.loop_factory = _loop_factory(parsed.loop)
    handler_class = _handler_class(parsed.classpath)
    if hasattr(handler_class, "from_cli"):
        parsed.handler = handler_class.from_cli(parser, *parsed.classargs)
    else:
        if parsed.classargs:
            parser.error(f"Handler class {parsed.classpath.rpartition('.')[0]} takes no arguments")
        parsed.handler = handler_class()
    parsed.host, parsed.port = _host_port(parser, parsed.listen)
    _check_cert_pair(parser, "smtps", parsed.smtpscert, parsed.smtpskey)
    _check_cert_pair(parser, "tls", parsed.tlscert, parsed.tlskey)
    return parser, parsed


def _drop_privileges() -> None:
    """Become ``nobody``, or exit 1 with aiosmtpd's messages."""
    if pwd is None:
        print('Cannot import module "pwd"; try running with -n option.', file=sys.stderr)
        sys.exit(1)
    try:
        os.setuid(pwd.getpwnam("nobody").pw_uid)
    except (PermissionError, KeyError):
        print('Cannot setuid "nobody"; try running with -n option.', file=sys.stderr)
        sys.exit(1)


def serve(
    controller: BaseUnthreadedController,
    drop_privileges: Optional[Callable[[], None]] = None,
    listening: Optional[Callable[[], None]] = None,
    workers: int = 1,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    proxy_trusted_networks: Optional[TrustedNetworks] = None,
) -> None:
    """Bind ``controller`` and run its loop until SIGINT, SIGTERM or Ctrl-C,
    drain its sessions (up to ``drain_timeout`` seconds; a second signal
    stops at once), then close the listener, its sessions and the loop.

    ``drop_privileges`` runs once bound (in each worker); ``listening`` once
    signals are handled (and every worker serves).  ``workers > 1`` forks
    that many processes serving what ``controller`` describes
    (``smtpd_compat.modern.workers``).  ``proxy_trusted_networks``: the
    proxies whose PROXY headers are believed.
    """
    smtp_class: Type[SMTP] = SMTP if proxy_trusted_networks is None else trusting(SMTP, proxy_trusted_networks)
    if workers > 1:
        _serve_workers(controller, smtp_class, drop_privileges, listening, workers, drain_timeout)
        return
    if proxy_trusted_networks is not None:
        setattr(controller, "factory", lambda: smtp_class(controller.handler, **controller.SMTP_kwargs))
    loop = controller.loop
    try:
        controller.begin()
    except BaseException:  # e.g. the port is taken
        loop.close()
        raise
    try:
        if drop_privileges is not None:
            drop_privileges()
        with draining(loop) as stop:
            if listening is not None:
                listening()
            # The loop, not the drain, is what runs: whoever stops the loop
            # (aiosmtpd-style code calling loop.stop()) ends the server too.
            drained = loop.create_task(drain_when_asked([controller], stop, drain_timeout))

            def stop_serving(task: "asyncio.Task[None]") -> None:
                loop.stop()

            drained.add_done_callback(stop_serving)
            # Where no handler could be installed, Ctrl-C arrives as KeyboardInterrupt.
            with suppress(KeyboardInterrupt):
                loop.run_forever()
            # Stopped by someone else: the cancelled drain must not stop the
            # loop again while the controller's shutdown runs it.
            drained.remove_done_callback(stop_serving)
            drained.cancel()
    finally:
        controller.end()
        loop.close()


def _serve_workers(
    controller: BaseUnthreadedController,
    smtp_class: Type[SMTP],
    drop_privileges: Optional[Callable[[], None]],
    listening: Optional[Callable[[], None]],
    workers: int,
    drain_timeout: float,
) -> None:
    def ready(listeners: Listeners) -> None:
        controller.port = listeners.port  # type: ignore[attr-defined]  # an inet controller
        if listening is not None:
            listening()

    controller.loop.close()  # each worker makes its own
    status = serve_workers(
        lambda: controller.handler,
        controller.hostname,  # type: ignore[attr-defined]
        controller.port,  # type: ignore[attr-defined]
        workers=workers,
        drain_timeout=drain_timeout,
        smtp_class=smtp_class,
        ssl_context=controller.ssl_context,
        ready=ready,
        worker_init=drop_privileges,
        loop=controller.loop_factory,
        **controller.SMTP_kwargs,
    )
    if status:
        raise SystemExit(status)


def main(args: Optional[Sequence[str]] = None) -> None:
    """Serve until SIGINT/SIGTERM (or Ctrl-C), then close everything and return."""
    parser, ns = parseargs(args=args)

    logging.basicConfig(level=logging.ERROR)
    log = logging.getLogger("mail.log")
    # The standard loop is aiosmtpd's: the current one, if any.
    loop = make_loop() if ns.loop == DEFAULT_LOOP else ns.loop_factory()
    if ns.debug > 0:
        log.setLevel(logging.INFO)
    if ns.debug > 1:
        log.setLevel(logging.DEBUG)
    if ns.debug > 2:
        loop.set_debug(enabled=True)

    try:
        # Built through functools.partial, as aiosmtpd's main built its server:
        # aiosmtpd's tests patch ``main.partial`` to stop right there.
        controller = partial(
            UnthreadedController,
            ns.handler,
            hostname=ns.host,
            port=ns.port,
            loop=loop,
            loop_factory=ns.loop_factory,
            ssl_context=server_tls_context(ns.smtpscert, ns.smtpskey),
            data_size_limit=ns.size,
            enable_SMTPUTF8=ns.smtputf8,
            tls_context=server_tls_context(ns.tlscert, ns.tlskey),
            require_starttls=ns.requiretls,
            **extension_settings(ns),
            **({} if ns.proxy_from is None else {"proxy_protocol_timeout": ns.proxy_timeout}),
        )()
    except OSError as e:  # ssl.SSLError included: an unreadable certificate or key
        _fail(f"cannot load the TLS certificate: {e}")

    def listening() -> None:
        # Logged once signals are handled, so watchers may signal right after it.
        log.info("Server is listening on %s:%s", ns.host, controller.port)
        announce_listening(PROGRAM, ns.classpath.rpartition(".")[2], ns.host, controller.port)
        log.debug("Starting asyncio loop")

    log.debug("Attempting to start server on %s:%s", ns.host, ns.port)
    try:
        serve(
            controller,
            drop_privileges=_drop_privileges if ns.setuid else None,
            listening=listening,
            workers=ns.workers,
            drain_timeout=ns.drain_timeout,
            proxy_trusted_networks=ns.proxy_from,
        )
    except OSError as e:
        _fail(f"cannot listen on {ns.host}:{ns.port}: {e.strerror or e}")
    log.debug("Completed asyncio loop")
