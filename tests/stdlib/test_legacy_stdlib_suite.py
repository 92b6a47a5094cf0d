"""Python 3.11's own test suite for smtpd (Lib/test/test_smtpd.py), run against smtpd_compat.

The file is loaded from a Python 3.11 installation, not copied: its module
imports ``smtpd`` and ``asyncore``, which are pointed at this package while
it loads.  Its TestCase classes are then collected here by pytest.  It drives
channels synchronously over ``test.mock_socket``, after assigning
``smtpd.socket`` and ``asyncore.socket``.
"""

from __future__ import annotations

import importlib.util
import sys
import unittest
from typing import Any, Dict

import smtpd_compat
from smtpd_compat import asyncore
from tests.stdlib._legacy_support import python311_test_dir


def _load_stdlib_suite() -> Dict[str, Any]:
    test_dir = python311_test_dir()
    if test_dir is None:
        return {}
    source = test_dir / "test_smtpd.py"
    try:
        from test import mock_socket  # noqa: F401  (the suite needs it)
        from test.support import socket_helper, warnings_helper  # noqa: F401
    except ImportError:
        return {}
    if not hasattr(warnings_helper, "import_deprecated"):  # 3.9/3.10 lack it
        return {}
    saved = {name: sys.modules.get(name) for name in ("smtpd", "asyncore")}
    sys.modules["smtpd"] = smtpd_compat
    sys.modules["asyncore"] = asyncore
    try:
        spec = importlib.util.spec_from_file_location("stdlib_test_smtpd", source)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, previous in saved.items():
            if previous is None:
                del sys.modules[name]
            else:
                sys.modules[name] = previous
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, unittest.TestCase)
    }


_SUITE = _load_stdlib_suite()
globals().update(_SUITE)


def test_the_stdlib_suite_was_found() -> None:
    if not _SUITE:
        import pytest

        pytest.skip("Python 3.11's test_smtpd.py or test.support is not available")
    assert {"SMTPDChannelTest", "DebuggingServerTest", "MiscTestCase"} <= set(_SUITE)
