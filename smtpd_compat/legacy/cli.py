"""``python -m smtpd_compat``: stdlib smtpd's command line, serving either face.

Options, defaults, messages and exit codes are those of ``python -m smtpd``
on Python 3.11.  ``-c`` names a legacy server class (``DebuggingServer``, or
``module.Class`` for your own ``SMTPServer`` subclass) or a modern handler
class (e.g. ``smtpd_compat.modern.handlers.Sink``), which is then served by
the modern SMTP protocol.  Ctrl-C and SIGTERM stop the server cleanly.
"""

from __future__ import annotations

import getopt
import os
import signal
import sys
from types import FrameType
from typing import Any, Dict, NoReturn, Optional, Union

from smtpd_compat import asyncore
from smtpd_compat.legacy.names import COMMASPACE, package

__all__ = ["Options", "main", "parseargs", "usage"]

HELP = """\
An SMTP server (RFC 5321, with the RFC 1870 SIZE and RFC 6531 SMTPUTF8
extensions), by default a proxy that relays every message to another server.

Usage: %(program)s [options] [localhost:localport [remotehost:remoteport]]

Options:

    --nosetuid
    -n
        Keep running as the current user.  Without this flag the server
        switches to the user `nobody' once it listens, which needs root
        privileges: run as another user, give this flag.

    --version
    -V
        Print the version and exit.

    --class classname
    -c classname
        The server class: a name in this package (PureProxy, the default,
        DebuggingServer, ...) or a dotted path, package.module.Class, to an
        SMTPServer subclass or to a modern handler class such as
        smtpd_compat.modern.handlers.Sink.

    --size limit
    -s limit
        Refuse messages of more than `limit' bytes and announce that limit
        with the SIZE extension (RFC 1870).  Defaults to no limit.

    --smtputf8
    -u
        Offer the SMTPUTF8 extension (RFC 6531).

    --debug
    -d
        Print debugging information to stderr.

    --help
    -h
        Print this message and exit.

Version: %(__version__)s

Without localhost, `localhost' is used; without localport, 8025.  Without
remotehost, `localhost' is used; without remoteport, 25.
"""


class Options:
    setuid = True
    classname = "PureProxy"
    size_limit: Optional[int] = None
    enable_SMTPUTF8 = False
    localhost: str
    localport: int
    remotehost: str
    remoteport: int


def usage(code: int, msg: Any = "") -> NoReturn:
    facade = package()
    print(HELP % {"program": facade.program, "__version__": facade.__version__}, file=sys.stderr)
    if msg:
        print(msg, file=sys.stderr)
    sys.exit(code)


def parseargs() -> Options:
    """The options from ``sys.argv``; ``-d`` also sets ``DEBUGSTREAM``."""
    try:
        opts, args = getopt.getopt(
            sys.argv[1:],
            "nVhc:s:du",
            ["class=", "nosetuid", "version", "help", "size=", "debug", "smtputf8"],
        )
    except getopt.error as e:
        usage(1, e)

    options = Options()
    for opt, arg in opts:
        if opt in ("-h", "--help"):
            usage(0)
        elif opt in ("-V", "--version"):
            print(package().__version__)
            sys.exit(0)
        elif opt in ("-n", "--nosetuid"):
            options.setuid = False
        elif opt in ("-c", "--class"):
            options.classname = arg
        elif opt in ("-d", "--debug"):
            package().DEBUGSTREAM = sys.stderr
        elif opt in ("-u", "--smtputf8"):
            options.enable_SMTPUTF8 = True
        elif opt in ("-s", "--size"):
            try:
                options.size_limit = int(arg)
            except ValueError:
                print("Invalid size: " + arg, file=sys.stderr)
                sys.exit(1)

    if len(args) > 2:
        usage(1, "Invalid arguments: %s" % COMMASPACE.join(args))
    localspec = args[0] if args else "localhost:8025"
    remotespec = args[1] if len(args) > 1 else "localhost:25"
    options.localhost, options.localport = _host_port(localspec, "local")
    options.remotehost, options.remoteport = _host_port(remotespec, "remote")
    return options


def _host_port(spec: str, which: str) -> "tuple[str, int]":
    host, colon, port = spec.partition(":")
    if not colon:
        usage(1, "Bad %s spec: %s" % (which, spec))
    try:
        return host, int(port)
    except ValueError:
        usage(1, "Bad %s port: %s" % (which, spec))


def _find_class(classname: str) -> Any:
    """``classname`` in this package, or ``package.module.Class``."""
    module_name, dot, name = classname.rpartition(".")
    try:
        module = __import__(module_name, fromlist=[""]) if dot else package()
        return getattr(module, name)
    except (ImportError, AttributeError) as e:
        print("Cannot find class %s: %s" % (classname, e), file=sys.stderr)
        sys.exit(1)


def _become_nobody() -> None:
    try:
        import pwd
    except ImportError:
        print('Cannot import module "pwd"; try running with -n option.', file=sys.stderr)
        sys.exit(1)
    nobody = pwd.getpwnam("nobody")[2]
    try:
        os.setuid(nobody)
    except PermissionError:
        print('Cannot setuid "nobody"; try running with -n option.', file=sys.stderr)
        sys.exit(1)


def _stop_on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    # Take the same way out as Ctrl-C.
    raise KeyboardInterrupt


def _serve_legacy(server_class: Any, options: Options) -> None:
    server_class(
        (options.localhost, options.localport),
        (options.remotehost, options.remoteport),
        options.size_limit,
        enable_SMTPUTF8=options.enable_SMTPUTF8,
    )
    if options.setuid:
        _become_nobody()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        asyncore.loop()
    except KeyboardInterrupt:
        pass
    finally:
        asyncore.close_all()


def _serve_modern(handler_class: Any, options: Options) -> None:
    # Imported here: legacy programs that import this package never need asyncio.
    import asyncio

    from smtpd_compat.modern.smtp import SMTP

    try:
        handler = handler_class()
    except TypeError as e:
        print("Cannot create handler %s without arguments: %s" % (options.classname, e), file=sys.stderr)
        sys.exit(1)
    settings: Dict[str, Union[bool, int]] = {"enable_SMTPUTF8": options.enable_SMTPUTF8}
    if options.size_limit is not None:
        settings["data_size_limit"] = options.size_limit
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(handler, loop=loop, **settings),  # type: ignore[arg-type]
            host=options.localhost,
            port=options.localport,
        )
    )
    if options.setuid:
        _become_nobody()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.run_until_complete(_end_sessions())
        loop.close()


async def _end_sessions() -> None:
    import asyncio

    current = asyncio.current_task()
    sessions = [task for task in asyncio.all_tasks() if task is not current]
    for task in sessions:
        task.cancel()
    await asyncio.gather(*sessions, return_exceptions=True)


def main() -> None:
    facade = package()
    # With `python -m`, the package was imported before argv[0] named the script.
    facade.program = sys.argv[0]
    options = parseargs()
    server_class = _find_class(options.classname)
    serve = _serve_legacy if isinstance(server_class, type) and issubclass(server_class, asyncore.dispatcher) else _serve_modern
    try:
        serve(server_class, options)
    except (OSError, ValueError) as e:
        print("Cannot serve %s on %s:%s: %s" % (options.classname, options.localhost, options.localport, e), file=sys.stderr)
        sys.exit(1)
