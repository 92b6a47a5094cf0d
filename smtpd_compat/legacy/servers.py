"""The ready-made servers of stdlib smtpd: DebuggingServer, PureProxy, MailmanProxy."""

from __future__ import annotations

import importlib
import time
from io import StringIO
from typing import Any, Dict, List, Tuple, Union

from smtpd_compat.legacy.names import debug
from smtpd_compat.legacy.server import SMTPServer

__all__ = ["DebuggingServer", "MailmanProxy", "PureProxy"]

Text = Union[str, bytes]
Refused = Dict[str, Tuple[int, Any]]


class DebuggingServer(SMTPServer):
    """Print every message to stdout instead of delivering it."""

    def _print_message_content(self, peer: Any, data: Text) -> None:
        binary = not isinstance(data, str)
        in_headers = True
        for line in data.splitlines():
            if in_headers and not line:
                # The end of the headers: show where the message came from.
                peer_header = "X-Peer: " + peer[0]
                print(repr(peer_header.encode("utf-8")) if binary else peer_header)
                in_headers = False
            # bytes lines are shown as repr(): print() of bytes would do that
            # anyway, and raise BytesWarning under `python -b`.
            print(repr(line) if binary else line)

    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> None:
        print("---------- MESSAGE FOLLOWS ----------")
        if kwargs:
            if kwargs.get("mail_options"):
                print("mail options: %s" % kwargs["mail_options"])
            if kwargs.get("rcpt_options"):
                print("rcpt options: %s\n" % kwargs["rcpt_options"])
        self._print_message_content(peer, data)
        print("------------ END MESSAGE ------------")


class PureProxy(SMTPServer):
    """Relay every message to the SMTP server at ``remoteaddr``, with an
    ``X-Peer:`` header naming the client added after the others."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("enable_SMTPUTF8"):
            raise ValueError("PureProxy does not support SMTPUTF8.")
        super().__init__(*args, **kwargs)

    # stdlib 3.11's PureProxy took no **kwargs and split str only, so it
    # failed on every message unless decode_data=True; bytes work here too.
    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> None:
        refused = self._deliver(mailfrom, rcpttos, _with_peer_header(data, peer))
        # TBD, as in the stdlib: refused recipients are only reported here.
        debug("we got some refusals:", refused)

    def _deliver(self, mailfrom: Any, rcpttos: List[str], data: Text) -> Refused:
        import smtplib  # only relaying servers pay for it (it imports ssl)

        refused: Refused = {}
        try:
            remote: Any = self._remoteaddr
            client = smtplib.SMTP()
            client.connect(remote[0], remote[1])
            try:
                refused = client.sendmail(mailfrom, rcpttos, data)
            finally:
                client.quit()
        except smtplib.SMTPRecipientsRefused as e:
            debug("got SMTPRecipientsRefused")
            refused = e.recipients
        except (OSError, smtplib.SMTPException) as e:
            debug("got", e.__class__)
            # Every recipient failed; give them the server's code if there
            # was one, else a code that triggers nothing.
            errcode = getattr(e, "smtp_code", -1)
            errmsg = getattr(e, "smtp_error", "ignore")
            for r in rcpttos:
                refused[r] = (errcode, errmsg)
        return refused


def _with_peer_header(data: Text, peer: Any) -> Text:
    """``data`` with ``X-Peer: <client ip>`` after its last header line."""
    if isinstance(data, str):
        lines: List[Any] = data.split("\n")
        header: Any = "X-Peer: %s" % peer[0]
        newline: Any = "\n"
    else:
        lines = data.split(b"\n")
        header = ("X-Peer: %s" % peer[0]).encode("ascii")
        # smtplib converts line ends of str messages only: send CRLF ourselves.
        newline = b"\r\n"
    end_of_headers = next((i for i, line in enumerate(lines) if not line), len(lines))
    lines.insert(end_of_headers, header)
    joined: Text = newline.join(lines)
    return joined


class MailmanProxy(PureProxy):
    """Hand messages for GNU Mailman 2 lists to Mailman, relay the rest
    (removed from the stdlib in Python 3.11).

    Needs Mailman's ``Mailman`` package importable; it is imported when the
    server is created, never when this module is.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("enable_SMTPUTF8"):
            raise ValueError("MailmanProxy does not support SMTPUTF8.")
        _mailman()  # fail now, with a clear message, rather than per message
        SMTPServer.__init__(self, *args, **kwargs)

    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> None:
        utils, message_module, maillist_module = _mailman()
        # (recipient, list name, command) for each address a local list answers to:
        # listname, listname-admin, -owner, -request, -join, -leave.
        for_lists: List[Tuple[str, str, str]] = []
        for rcpt in rcpttos:
            parts = rcpt.lower().split("@")[0].split("-")
            if len(parts) > 2:
                continue
            listname = parts[0]
            command = parts[1] if len(parts) == 2 else ""
            if not utils.list_exists(listname) or command not in _QUEUE_FOR_COMMAND:
                continue
            for_lists.append((rcpt, listname, command))
        for rcpt, _, _ in for_lists:
            rcpttos.remove(rcpt)
        debug("forwarding recips:", " ".join(rcpttos))
        if rcpttos:
            refused = self._deliver(mailfrom, rcpttos, data)
            debug("we got refusals:", refused)
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        msg = message_module.Message(StringIO(text))
        # Mailman relies on these; MTAs add them when the client did not.
        if not msg.get("from"):
            msg["From"] = mailfrom
        if not msg.get("date"):
            msg["Date"] = time.ctime(time.time())
        mlists: Dict[str, Any] = {}
        for rcpt, listname, command in for_lists:
            debug("sending message to", rcpt)
            mlist = mlists.get(listname)
            if not mlist:
                mlist = mlists[listname] = maillist_module.MailList(listname, lock=0)
            if command in _SUBSCRIPTION_SUBJECTS:
                # Mailman takes (un)subscription requests by Subject.
                msg["Subject"] = _SUBSCRIPTION_SUBJECTS[command]
            msg.Enqueue(mlist, **{_QUEUE_FOR_COMMAND[command]: 1})


# Address suffix -> the Message.Enqueue() flag that routes it in Mailman.
_QUEUE_FOR_COMMAND = {
    "": "tolist",
    "admin": "toadmin",
    "owner": "toowner",
    "request": "torequest",
    "join": "torequest",
    "leave": "torequest",
}
_SUBSCRIPTION_SUBJECTS = {"join": "subscribe", "leave": "unsubscribe"}


def _mailman() -> Tuple[Any, Any, Any]:
    """Mailman's Utils, Message and MailList modules."""
    try:
        return tuple(  # type: ignore[return-value]
            importlib.import_module("Mailman." + name) for name in ("Utils", "Message", "MailList")
        )
    except ImportError as e:
        raise ImportError(
            "MailmanProxy needs GNU Mailman 2's 'Mailman' package on sys.path (%s)" % e
        ) from e

