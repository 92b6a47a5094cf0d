"""The Mailbox example of aiosmtpd's handlers documentation, run verbatim.

Only the two ``aiosmtpd`` imports are mapped to ``smtpd_compat.modern``.
Like aiosmtpd's own doc tests, the example needs a ``resources`` ExitStack.
It listens on the Controller's default port, moved for the run to a free one
(``tests/_port_moves.py``) while the test holds 8025 itself, as another
program on the machine could.
"""

from __future__ import annotations

import doctest
from contextlib import ExitStack
from typing import List


from smtpd_compat.modern.controller import get_localhost

from ._periphery import connection_refused
from tests._peer_suites import free_ports, holding_well_known_ports
from tests._port_moves import move_default_ports

MAILBOX_EXAMPLE = '''
    >>> import os
    >>> from smtpd_compat.modern.controller import Controller
    >>> from smtpd_compat.modern.handlers import Mailbox
    >>> from tempfile import TemporaryDirectory
    >>> # Clean up the temporary directory at the end of this doctest.
    >>> tempdir = resources.enter_context(TemporaryDirectory())

    >>> maildir_path = os.path.join(tempdir, 'maildir')
    >>> controller = Controller(Mailbox(maildir_path))
    >>> controller.start()
    >>> # Arrange for the controller to be stopped at the end of this doctest.
    >>> ignore = resources.callback(controller.stop)

Now we can connect to the server and send it a message...

    >>> from smtplib import SMTP
    >>> client = SMTP(controller.hostname, controller.port)
    >>> client.sendmail('aperson@example.com', ['bperson@example.com'], """\\
    ... From: Anne Person <anne@example.com>
    ... To: Bart Person <bart@example.com>
    ... Subject: A test
    ... Message-ID: <ant>
    ...
    ... Hi Bart, this is Anne.
    ... """)
    {}

...and a second message...

    >>> client.sendmail('cperson@example.com', ['dperson@example.com'], """\\
    ... From: Cate Person <cate@example.com>
    ... To: Dave Person <dave@example.com>
    ... Subject: A test
    ... Message-ID: <bee>
    ...
    ... Hi Dave, this is Cate.
    ... """)
    {}

...and a third message.

    >>> client.sendmail('eperson@example.com', ['fperson@example.com'], """\\
    ... From: Elle Person <elle@example.com>
    ... To: Fred Person <fred@example.com>
    ... Subject: A test
    ... Message-ID: <cat>
    ...
    ... Hi Fred, this is Elle.
    ... """)
    {}

We open up the mailbox again, and all three messages are waiting for us.

    >>> from mailbox import Maildir
    >>> from operator import itemgetter
    >>> mailbox = Maildir(maildir_path)
    >>> messages = sorted(mailbox, key=itemgetter('message-id'))
    >>> for message in messages:
    ...     print(message['Message-ID'], message['From'], message['To'])
    <ant> Anne Person <anne@example.com> Bart Person <bart@example.com>
    <bee> Cate Person <cate@example.com> Dave Person <dave@example.com>
    <cat> Elle Person <elle@example.com> Fred Person <fred@example.com>
'''


def test_mailbox_example_runs_verbatim() -> None:
    (port,) = free_ports(1)
    restore = move_default_ports({8025: port})
    try:
        with holding_well_known_ports():
            run_mailbox_example(port)
    finally:
        restore()


def run_mailbox_example(port: int) -> None:
    localhost = get_localhost()
    report: List[str] = []
    with ExitStack() as resources:
        test = doctest.DocTestParser().get_doctest(MAILBOX_EXAMPLE, {"resources": resources}, "mailbox", None, 0)
        try:
            result = doctest.DocTestRunner().run(test, out=report.append, clear_globs=False)
        finally:
            # The example leaves its smtplib client open; stop() has cut it already.
            client = test.globs.get("client")
            if client is not None:
                client.close()
        assert result == doctest.TestResults(failed=0, attempted=19), "".join(report)
        assert test.globs["controller"].port == port
    # The ExitStack stopped the controller: the port is free again.
    assert connection_refused(localhost, port)
    test.globs.clear()
