"""Fixtures shared by every test module."""
from __future__ import annotations

import importlib
import re
import socket
import sys
import warnings
from types import ModuleType
from typing import Callable

import pytest

# tests/plugin runs inner pytest sessions; pytest_plugins is honoured only here, at the top.
pytest_plugins = ["pytester"]

# The last line of an SMTP reply: three digits, then a space (or nothing) instead of '-'.
_FINAL_REPLY_LINE = re.compile(rb"^\d{3}(?: .*)?\r\n\Z", re.DOTALL)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (prefer binding port 0 where the API allows)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def read_smtp_reply(sock: socket.socket) -> bytes:
    """All lines of one SMTP reply, CRLFs included, read from a blocking socket.

    Reads one byte at a time so nothing after the reply (a pipelined next reply) is consumed.
    """
    reply = b""
    line = b""
    while True:
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError("connection closed inside a reply: %r" % (reply + line))
        line += byte
        if line.endswith(b"\r\n"):
            reply += line
            if _FINAL_REPLY_LINE.match(line):
                return reply
            line = b""


@pytest.fixture
def read_reply() -> Callable[[socket.socket], bytes]:
    """``read_reply(sock)`` -> the raw bytes of the next complete SMTP reply on ``sock``."""
    return read_smtp_reply


@pytest.fixture
def stdlib_module() -> Callable[[str], ModuleType]:
    """``stdlib_module("asyncore")`` -> the real Python 3.11 module, to compare behaviour against;
    skips the test on any other Python (the modules are gone from 3.12 and compatibility targets 3.11)."""

    def load(name: str) -> ModuleType:
        if sys.version_info[:2] != (3, 11):
            pytest.skip("comparison with the stdlib %s runs on Python 3.11 only" % name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(name)

    return load
