"""``python -m smtpd_compat``: stdlib smtpd's command line, serving either face.

Options, defaults, messages and exit codes are those of ``python -m smtpd``
on Python 3.11.  ``-c`` names a legacy server class (``DebuggingServer``, or
``module.Class`` for your own ``SMTPServer`` subclass) or a modern handler
class (e.g. ``smtpd_compat.modern.handlers.Sink``), which is then served by
the modern SMTP protocol.  Ctrl-C and SIGTERM stop the server cleanly.

The TLS and extension options (``--chunking`` ...) are additions, spelled as on the modern command line
(``--tlscert``/``--tlskey``, ``--no-requiretls``, ``--smtpscert``/
``--smtpskey``), and so are ``-w``/``--workers``, ``--loop`` (modern handler classes only) and ``--drain-timeout``
(the first stop signal drains: idle sessions hear 421, transactions under
way finish; a second one stops at once).  Every stdlib option, abbreviations included, is parsed
as before: ``--smtp`` still means ``--smtputf8`` and ``--no``
``--nosetuid``.
"""

from __future__ import annotations

import getopt
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NoReturn, Optional, Tuple

from smtpd_compat import asyncore
from smtpd_compat.common.address import MAX_PORT, split_bracketed
from smtpd_compat.common.classpath import import_class
from smtpd_compat.common.console import announce_listening
from smtpd_compat.common.supervisor import DEFAULT_DRAIN_TIMEOUT
from smtpd_compat.common.tls import server_tls_context
from smtpd_compat.legacy.drain import serve_legacy
from smtpd_compat.legacy.names import COMMASPACE, package
from smtpd_compat.legacy.opt_in import OPT_IN_EXTENSIONS

if TYPE_CHECKING:
    import ssl

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

    --tlscert certfile
    --tlskey keyfile
        Offer STARTTLS (RFC 3207) with this certificate and private key
        (PEM files; give both).  Clients must then start TLS before any
        command but EHLO, NOOP and QUIT.

    --no-requiretls
        With --tlscert and --tlskey: also serve clients that do not start
        TLS.

    --smtpscert certfile
    --smtpskey keyfile
        Speak TLS from the first byte ("SMTPS", RFC 8314) with this
        certificate and private key (PEM files; give both).

    --chunking, --binarymime, --pipelining, --enhancedstatuscodes, --dsn
        Offer that extension (RFC 3030 CHUNKING and BINARYMIME, RFC 2920,
        RFC 2034, RFC 3461 DSN); each is off by default, as in stdlib smtpd.

    --workers n
    -w n
        Serve with n forked processes accepting from one socket (not on
        Windows).  Default 1.

    --loop asyncio|uvloop
        The event loop a modern handler class is served on (default
        asyncio; uvloop needs pip install smtpd_compat[uvloop], not on
        Windows).  Legacy server classes run on asyncore.

    --drain-timeout seconds
        On SIGTERM or Ctrl-C, stop accepting, say 421 to idle sessions and
        let transactions under way finish for up to this long (default 30);
        a second signal stops at once.

    --help
    -h
        Print this message and exit.

Version: %(__version__)s

Without localhost, `localhost' is used; without localport, 8025.  Without
remotehost, `localhost' is used; without remoteport, 25.  An IPv6 address
goes in brackets: [::1]:8025.
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
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    require_starttls = True
    smtps_cert: Optional[str] = None
    smtps_key: Optional[str] = None
    #: The ``enable_<extension>`` keywords the extension flags turned on.
    extensions: Dict[str, bool]
    workers = 1
    drain_timeout = DEFAULT_DRAIN_TIMEOUT
    #: ``--loop``; None when not given.
    loop: Optional[str] = None


def usage(code: int, msg: Any = "") -> NoReturn:
    facade = package()
    print(HELP % {"program": facade.program, "__version__": facade.__version__}, file=sys.stderr)
    if msg:
        print(msg, file=sys.stderr)
    sys.exit(code)


_STDLIB_LONG_OPTIONS = ["class=", "nosetuid", "version", "help", "size=", "debug", "smtputf8"]
_EXTENSION_OPTIONS = {"--" + name.lower(): "enable_" + name for name in OPT_IN_EXTENSIONS}
_TLS_LONG_OPTIONS = ["tlscert=", "tlskey=", "no-requiretls", "smtpscert=", "smtpskey="]
_SCALE_LONG_OPTIONS = ["workers=", "drain-timeout=", "loop="]
_ADDED_LONG_OPTIONS = _TLS_LONG_OPTIONS + _SCALE_LONG_OPTIONS + [flag[2:] for flag in _EXTENSION_OPTIONS]


def _kept_abbreviations() -> Dict[str, str]:
    """Abbreviations of a stdlib option that the added options would make
    ambiguous (``--smtp``: ``--smtputf8`` or ``--smtpscert``?), mapped to
    the stdlib option they name, as they did in stdlib smtpd."""
    stdlib = [option.rstrip("=") for option in _STDLIB_LONG_OPTIONS]
    added = [option.rstrip("=") for option in _ADDED_LONG_OPTIONS]
    kept = {}
    for name in stdlib:
        for end in range(1, len(name)):
            prefix = name[:end]
            named = [other for other in stdlib if other.startswith(prefix)]
            if named == [name] and any(other.startswith(prefix) for other in added):
                kept[prefix] = name
    return kept


def _getopt(argv: List[str]) -> Tuple[List[Tuple[str, str]], List[str]]:
    kept = _kept_abbreviations()
    # getopt prefers an exact match, so listing the kept abbreviations
    # themselves resolves them before the ambiguity check.
    takes_value = {option.rstrip("=") for option in _STDLIB_LONG_OPTIONS if option.endswith("=")}
    aliases = [prefix + ("=" if name in takes_value else "") for prefix, name in kept.items()]
    try:
        opts, args = getopt.getopt(argv, "nVhc:s:duw:", _STDLIB_LONG_OPTIONS + _ADDED_LONG_OPTIONS + aliases)
    except getopt.error as e:
        if e.opt in kept:  # the message names the option, as stdlib's did
            e.msg = e.msg.replace("--" + e.opt, "--" + kept[e.opt])
        raise
    return [("--" + kept[opt[2:]] if opt[2:] in kept else opt, arg) for opt, arg in opts], args


def parseargs() -> Options:
    """The options from ``sys.argv``; ``-d`` also sets ``DEBUGSTREAM``."""
    try:
        opts, args = _getopt(sys.argv[1:])
    except getopt.error as e:
        usage(1, e)

    options = Options()
    options.extensions = {}
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
        elif opt == "--tlscert":
            options.tls_cert = arg
        elif opt == "--tlskey":
            options.tls_key = arg
        elif opt == "--no-requiretls":
            options.require_starttls = False
        elif opt == "--smtpscert":
            options.smtps_cert = arg
        elif opt == "--smtpskey":
            options.smtps_key = arg
        elif opt in _EXTENSION_OPTIONS:
            options.extensions[_EXTENSION_OPTIONS[opt]] = True
        elif opt in ("-w", "--workers"):
            options.workers = _number(int, arg, "workers", 1)
        elif opt == "--drain-timeout":
            options.drain_timeout = _number(float, arg, "drain timeout", 0)
        elif opt == "--loop":
            options.loop = arg
    _check_pair("tls", options.tls_cert, options.tls_key)
    _check_pair("smtps", options.smtps_cert, options.smtps_key)

    if len(args) > 2:
        usage(1, "Invalid arguments: %s" % COMMASPACE.join(args))
    localspec = args[0] if args else "localhost:8025"
    remotespec = args[1] if len(args) > 1 else "localhost:25"
    options.localhost, options.localport = _host_port(localspec, "local")
    options.remotehost, options.remoteport = _host_port(remotespec, "remote")
    return options


def _number(kind: Callable[[str], Any], arg: str, what: str, least: float) -> Any:
    try:
        value = kind(arg)
        if value >= least:
            return value
    except ValueError:
        pass
    usage(1, "Invalid %s: %s" % (what, arg))


def _check_pair(kind: str, cert: Optional[str], key: Optional[str]) -> None:
    # The modern command line's messages.
    if bool(cert) != bool(key):
        usage(1, "--%scert and --%skey must be specified together" % (kind, kind))
    if cert and not os.path.exists(cert):
        usage(1, "Cert file %s not found" % cert)
    if key and not os.path.exists(key):
        usage(1, "Key file %s not found" % key)


def _tls_contexts(options: Options) -> "Tuple[Optional[ssl.SSLContext], Optional[ssl.SSLContext]]":
    """(STARTTLS context, SMTPS context) for the options given."""
    return (
        server_tls_context(options.tls_cert, options.tls_key),
        server_tls_context(options.smtps_cert, options.smtps_key),
    )


def _host_port(spec: str, which: str) -> "tuple[str, int]":
    bracketed = split_bracketed(spec)  # "[::1]:8025": an IPv6 host keeps its colons
    if bracketed is not None:
        host, rest = bracketed
        colon, port = rest[:1], rest[1:]
    else:
        host, colon, port = spec.partition(":")
    if colon != ":":
        usage(1, "Bad %s spec: %s" % (which, spec))
    try:
        number = int(port)
    except ValueError:
        usage(1, "Bad %s port: %s" % (which, spec))
    if not 0 <= number <= MAX_PORT:
        print("Bad %s port: %s (ports are 0 to %d)" % (which, spec, MAX_PORT), file=sys.stderr)
        sys.exit(1)
    return host, number


def _find_class(classname: str) -> Any:
    """``classname`` in this package, or ``package.module.Class``."""
    try:
        return import_class(classname) if "." in classname else getattr(package(), classname)
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


def _serve_legacy(server_class: Any, options: Options) -> None:
    if options.loop is not None:
        usage(1, "--loop applies to modern handler classes: %s runs on asyncore" % options.classname)
    tls_context, smtps_context = _tls_contexts(options)
    server = server_class(
        (options.localhost, options.localport),
        (options.remotehost, options.remoteport),
        options.size_limit,
        enable_SMTPUTF8=options.enable_SMTPUTF8,
    )
    # Set as attributes, which channels read: a user's server class need
    # not accept the keywords in its __init__.
    if tls_context is not None:
        server.tls_context = tls_context
        server.require_starttls = options.require_starttls
    if smtps_context is not None:
        server.ssl_context = smtps_context
    for keyword in options.extensions:
        setattr(server, keyword, True)
    if options.setuid:
        _become_nobody()
    listener = getattr(server, "socket", None)  # a subclass may have replaced it
    port = listener.getsockname()[1] if listener is not None else options.localport
    try:
        status = serve_legacy(server, options.drain_timeout, options.workers, lambda: _announce(options, port))
    finally:
        asyncore.close_all()
    if status:
        sys.exit(status)


def _serve_modern(handler_class: Any, options: Options) -> None:
    # Imported here: legacy programs that import this package never need asyncio.
    from smtpd_compat.common.loops import DEFAULT_LOOP, LoopUnavailable, loop_factory
    from smtpd_compat.modern.controller import UnthreadedController
    from smtpd_compat.modern.main import serve

    try:
        factory = loop_factory(options.loop or DEFAULT_LOOP)
    except ValueError as e:
        usage(1, "Invalid loop: %s" % e)
    except LoopUnavailable as e:
        # One line and status 2, as on the modern command line.
        print("%s: %s" % (package().program, e), file=sys.stderr)
        sys.exit(2)
    try:
        handler = handler_class()
    except TypeError as e:
        print("Cannot create handler %s without arguments: %s" % (options.classname, e), file=sys.stderr)
        sys.exit(1)
    settings: Dict[str, Any] = {"enable_SMTPUTF8": options.enable_SMTPUTF8, **options.extensions}
    if options.size_limit is not None:
        settings["data_size_limit"] = options.size_limit
    tls_context, smtps_context = _tls_contexts(options)
    if tls_context is not None:
        settings.update(tls_context=tls_context, require_starttls=options.require_starttls)
    controller = UnthreadedController(
        handler, hostname=options.localhost, port=options.localport, ssl_context=smtps_context,
        loop_factory=factory, **settings,
    )
    serve(
        controller,
        drop_privileges=_become_nobody if options.setuid else None,
        listening=lambda: _announce(options, controller.port),
        workers=options.workers,
        drain_timeout=options.drain_timeout,
    )


def _announce(options: Options, port: int) -> None:
    announce_listening("smtpd_compat", options.classname, options.localhost, port)


def main() -> None:
    facade = package()
    # With `python -m`, the package was imported before argv[0] named the script.
    facade.program = sys.argv[0]
    options = parseargs()
    server_class = _find_class(options.classname)
    serve = _serve_legacy if isinstance(server_class, type) and issubclass(server_class, asyncore.dispatcher) else _serve_modern
    try:
        serve(server_class, options)
    except (OSError, ValueError, OverflowError) as e:
        print("Cannot serve %s on %s:%s: %s" % (options.classname, options.localhost, options.localport, e), file=sys.stderr)
        sys.exit(1)
