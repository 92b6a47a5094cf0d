"""The module-level names and the class surface of ``smtpd_compat`` (stdlib smtpd's)."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import warnings
from typing import Any, Dict, Iterator, List
from unittest import mock

import pytest

import smtpd_compat as smtpd
from smtpd_compat import asynchat, asyncore
from tests.stdlib._legacy_support import env_with_repo, reference_python


@pytest.fixture
def private_map() -> Iterator[Dict[int, Any]]:
    socket_map: Dict[int, Any] = {}
    yield socket_map
    asyncore.close_all(map=socket_map)


def test_import_emits_no_deprecation_warning() -> None:
    subprocess.run(
        [sys.executable, "-W", "error", "-c", "import smtpd_compat; from smtpd_compat import asyncore, asynchat"],
        check=True, env=env_with_repo(),
    )


def test_module_names() -> None:
    assert smtpd.__all__ == ["SMTPChannel", "SMTPServer", "DebuggingServer", "PureProxy"]
    assert smtpd.__version__ == "Python SMTP proxy version 0.3"
    assert (smtpd.NEWLINE, smtpd.COMMASPACE, smtpd.EMPTYSTRING) == ("\n", ", ", "")
    assert smtpd.DATA_SIZE_DEFAULT == 33554432
    assert isinstance(smtpd.DEBUGSTREAM, smtpd.Devnull)
    assert smtpd.Devnull().write("ignored") is None and smtpd.Devnull().flush() is None
    assert smtpd.asyncore is asyncore and smtpd.asynchat is asynchat
    assert issubclass(smtpd.SMTPChannel, asynchat.async_chat)
    assert issubclass(smtpd.SMTPServer, asyncore.dispatcher)
    assert issubclass(smtpd.MailmanProxy, smtpd.PureProxy)
    for public in (smtpd.SMTPChannel, smtpd.SMTPServer, smtpd.DebuggingServer, smtpd.PureProxy):
        assert public.__module__ == "smtpd_compat"


def test_every_name_of_stdlib_smtpd_exists() -> None:
    listing = subprocess.run(
        [reference_python(), "-W", "ignore", "-c",
         "import smtpd, types; print(' '.join(n for n, v in vars(smtpd).items()"
         " if not n.startswith('_') and not isinstance(v, types.ModuleType)"
         " and getattr(v, '__module__', 'smtpd') == 'smtpd'))"],
        capture_output=True, check=True,
    ).stdout.decode().split()
    assert set(listing) == {
        "program", "Devnull", "DEBUGSTREAM", "NEWLINE", "COMMASPACE", "DATA_SIZE_DEFAULT", "usage",
        "SMTPChannel", "SMTPServer", "DebuggingServer", "PureProxy", "Options", "parseargs",
    }
    missing = [name for name in listing if not hasattr(smtpd, name)]
    assert missing == []


def test_debugstream_is_read_when_printing(private_map, monkeypatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(smtpd, "DEBUGSTREAM", stream)
    server = smtpd.DebuggingServer(("127.0.0.1", 0), ("remote", 25), map=private_map)
    assert stream.getvalue().startswith("DebuggingServer started at ")
    assert "\n\tLocal addr: ('127.0.0.1', 0)\n\tRemote addr:('remote', 25)\n" in stream.getvalue()
    assert server._localaddr == ("127.0.0.1", 0) and server._remoteaddr == ("remote", 25)


def test_server_binds_and_listens_in_the_constructor(private_map) -> None:
    server = smtpd.SMTPServer(("127.0.0.1", 0), None, map=private_map)
    host, port = server.socket.getsockname()
    assert host == "127.0.0.1" and port != 0
    assert server.accepting and private_map[server.socket.fileno()] is server
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    with pytest.raises(OSError):
        smtpd.SMTPServer(("127.0.0.1", port), None, map=private_map)
    assert len(private_map) == 1  # the failed one left nothing behind
    server.close()
    assert private_map == {}
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_server_picks_the_address_family(private_map) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = smtpd.SMTPServer(("::1", 0), None, map=private_map)
    except OSError:
        pytest.skip("::1 is not available")
    assert server.socket.family == socket.AF_INET6


def test_decode_data_and_smtputf8_exclude_each_other(private_map) -> None:
    with pytest.raises(ValueError, match="decode_data and enable_SMTPUTF8 cannot be set to True at the same time"):
        smtpd.SMTPServer(("127.0.0.1", 0), None, map=private_map, enable_SMTPUTF8=True, decode_data=True)
    assert private_map == {}


def test_handle_accepted_builds_the_channel_class(private_map) -> None:
    made: List[Any] = []

    class Server(smtpd.SMTPServer):
        channel_class = mock.Mock(side_effect=lambda *args: made.append(args))

    server = Server(("127.0.0.1", 0), None, 1234, map=private_map, enable_SMTPUTF8=True)
    conn = object()
    server.handle_accepted(conn, ("10.0.0.1", 5))
    assert made == [(server, conn, ("10.0.0.1", 5), 1234, private_map, True, False)]


def test_base_process_message_is_abstract(private_map) -> None:
    server = smtpd.SMTPServer(("127.0.0.1", 0), None, map=private_map)
    with pytest.raises(NotImplementedError):
        server.process_message(("1.2.3.4", 5), "a@b", ["c@d"], b"x")


def test_channel_has_the_stdlib_instance_variables(stdlib_module, private_map) -> None:
    real = stdlib_module("smtpd")
    ours_pair = socket.socketpair()
    real_pair = socket.socketpair()
    real_map: Dict[int, Any] = {}
    try:
        ours = smtpd.SMTPChannel(mock.Mock(), ours_pair[0], "x", map=private_map)
        theirs = real.SMTPChannel(mock.Mock(), real_pair[0], "x", map=real_map)
        expected = {name for name in vars(theirs) if not name.startswith("_") or name.startswith("_SMTPChannel")}
        expected |= {"_emptystring", "_linesep", "_dotsep", "_newline", "_decode_data", "_map", "_fileno"}
        assert expected - set(vars(ours)) == set()
        for name in ("smtp_state", "seen_greeting", "mailfrom", "rcpttos", "received_data", "received_lines",
                     "num_bytes", "extended_smtp", "require_SMTPUTF8", "data_size_limit", "enable_SMTPUTF8",
                     "terminator", "_emptystring", "_linesep", "_dotsep", "_newline"):
            assert getattr(ours, name) == getattr(theirs, name), name
        assert ours.max_command_size_limit == theirs.max_command_size_limit == 512
        assert (smtpd.SMTPChannel.COMMAND, smtpd.SMTPChannel.DATA) == (real.SMTPChannel.COMMAND, real.SMTPChannel.DATA)
        assert smtpd.SMTPChannel.command_size_limit == 512
        assert ours.fqdn == theirs.fqdn
    finally:
        asyncore.close_all(map=real_map)
        for sock in ours_pair + real_pair:
            sock.close()


def test_deprecated_private_names_warn(private_map) -> None:
    ours, peer = socket.socketpair()
    peer.close()
    channel = smtpd.SMTPChannel(mock.Mock(), ours, "x", map=private_map)
    with pytest.warns(DeprecationWarning, match="Access to __state attribute on SMTPChannel is deprecated, use 'smtp_state' instead"):
        assert channel._SMTPChannel__state == channel.COMMAND
    with pytest.warns(DeprecationWarning, match="Setting __greeting attribute on SMTPChannel is deprecated, set 'seen_greeting' instead"):
        channel._SMTPChannel__greeting = "hello"
    assert channel.seen_greeting == "hello"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        channel.smtp_state = channel.COMMAND  # the real names never warn


def test_parseargs_defaults_and_options(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["prog"])
    options = smtpd.parseargs()
    assert (options.setuid, options.classname, options.size_limit, options.enable_SMTPUTF8) == (True, "PureProxy", None, False)
    assert (options.localhost, options.localport, options.remotehost, options.remoteport) == ("localhost", 8025, "localhost", 25)
    monkeypatch.setattr(smtpd, "DEBUGSTREAM", smtpd.Devnull())
    monkeypatch.setattr(sys, "argv", ["prog", "-n", "-d", "-u", "-c", "a.B", "--size=10", "h:1", "r:2"])
    options = smtpd.parseargs()
    assert (options.setuid, options.classname, options.size_limit, options.enable_SMTPUTF8) == (False, "a.B", 10, True)
    assert (options.localhost, options.localport, options.remotehost, options.remoteport) == ("h", 1, "r", 2)
    assert smtpd.DEBUGSTREAM is sys.stderr


def test_usage_prints_help_and_message(capsys, monkeypatch) -> None:
    monkeypatch.setattr(smtpd, "program", "my-smtpd")
    with pytest.raises(SystemExit) as exit_info:
        smtpd.usage(2, "something was wrong")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Usage: my-smtpd [options] [localhost:localport [remotehost:remoteport]]" in err
    assert err.endswith("\nsomething was wrong\n")
