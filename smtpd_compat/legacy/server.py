"""``SMTPServer``: the listening socket of stdlib smtpd, and a modern handler too."""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Tuple, Type

from smtpd_compat import asyncore
from smtpd_compat.asyncore import SocketMap
from smtpd_compat.engine import esmtp
from smtpd_compat.legacy import bridge, opt_in
from smtpd_compat.legacy.channel import SMTPChannel
from smtpd_compat.legacy.names import DATA_SIZE_DEFAULT, check_data_options, debug, package

if TYPE_CHECKING:
    import ssl

__all__ = ["SMTPServer"]


class SMTPServer(asyncore.dispatcher):
    # SMTPChannel class to use for managing client connections
    channel_class: Type[SMTPChannel] = SMTPChannel

    #: ``listen()`` backlog.  stdlib smtpd used 5: with more clients
    #: connecting at once than that, the kernel dropped their SYNs and every
    #: client stalled for a second-long retransmit.
    listen_backlog = 128

    # Extensions stdlib smtpd did not have, all off (see __init__); channels
    # read them when a client connects.
    tls_context: Optional[ssl.SSLContext] = None
    require_starttls = False
    ssl_context: Optional[ssl.SSLContext] = None
    authenticator: Optional[Callable[..., Any]] = None
    auth_required = False
    auth_require_tls = True
    auth_exclude_mechanism: Optional[Iterable[str]] = None
    #: Most simultaneous connections from one client address to this
    #: server; the next gets a 421 and is closed (as the modern face's
    #: ``SMTP.connection_limit_per_client``).  0: no limit (stdlib's).
    connection_limit_per_client = 0

    def __init__(
        self,
        localaddr: Optional[Tuple[Any, ...]],
        remoteaddr: Optional[Tuple[Any, ...]],
        data_size_limit: Optional[int] = DATA_SIZE_DEFAULT,
        map: Optional[SocketMap] = None,
        enable_SMTPUTF8: bool = False,
        decode_data: bool = False,
        *,
        tls_context: Optional[ssl.SSLContext] = None,
        require_starttls: bool = False,
        ssl_context: Optional[ssl.SSLContext] = None,
        authenticator: Optional[Callable[..., Any]] = None,
        auth_required: bool = False,
        auth_require_tls: bool = True,
        auth_exclude_mechanism: Optional[Iterable[str]] = None,
        enable_CHUNKING: bool = False,
        enable_BINARYMIME: bool = False,
        enable_PIPELINING: bool = False,
        enable_ENHANCEDSTATUSCODES: bool = False,
        enable_DSN: bool = False,
        connection_limit_per_client: int = 0,
    ) -> None:
        """Bind and listen on ``localaddr`` right away.

        ``localaddr=None`` (not accepted by stdlib smtpd) makes an instance
        that does not listen: a handler for the modern server only.

        The keyword-only arguments turn on what stdlib smtpd never had, with
        the meaning they have on the modern face (``SMTP``/``Controller``):

        ``tls_context``: offer STARTTLS (RFC 3207) with this server context;
        ``require_starttls``: then refuse everything but EHLO, NOOP, QUIT
        and STARTTLS before it.  ``ssl_context``: implicit TLS ("SMTPS",
        RFC 8314) from the first byte.  ``authenticator``: offer AUTH LOGIN
        and PLAIN (RFC 4954); it is called as ``authenticator(server,
        session, envelope, mechanism, auth_data)`` with a ``LoginPassword``
        and returns an ``AuthResult``, as on the modern face.
        ``auth_required``: refuse MAIL, RCPT, DATA, VRFY and HELP before
        AUTH.  ``auth_require_tls``: offer and accept AUTH only over TLS.
        ``auth_exclude_mechanism``: mechanisms not to offer.
        ``enable_CHUNKING``: BDAT (RFC 3030), ``process_message`` gets the
        message as after DATA; ``enable_BINARYMIME`` (needs it and no
        ``decode_data``); ``enable_PIPELINING``, ``enable_ENHANCEDSTATUSCODES``
        (RFC 2920, 2034); ``enable_DSN`` (RFC 3461): ``process_message`` gets
        ``dsn`` and ``rcpt_dsn`` keywords (``engine.dsn.MailDsn``/``RcptDsn``).
        ``connection_limit_per_client``: most simultaneous connections from
        one address (0: none); the next gets "421 Error: too many
        connections from your address".
        """
        if auth_required and authenticator is None:
            raise ValueError("auth_required needs an authenticator")
        if auth_required and not auth_require_tls:
            warnings.warn("Requiring AUTH while not requiring TLS can lead to security vulnerabilities!")
        self.tls_context = tls_context
        self.require_starttls = require_starttls
        self.ssl_context = ssl_context
        self.authenticator = authenticator
        self.auth_required = auth_required
        self.auth_require_tls = auth_require_tls
        self.auth_exclude_mechanism = auth_exclude_mechanism
        self.enable_CHUNKING = enable_CHUNKING
        self.enable_BINARYMIME = enable_BINARYMIME
        self.enable_PIPELINING = enable_PIPELINING
        self.enable_ENHANCEDSTATUSCODES = enable_ENHANCEDSTATUSCODES
        self.enable_DSN = enable_DSN
        if connection_limit_per_client:  # else the class attribute holds
            self.connection_limit_per_client = connection_limit_per_client
        esmtp.check_offer(esmtp.Offer(None, not decode_data, False, **opt_in.offered(self)))
        self._localaddr = localaddr
        self._remoteaddr = remoteaddr
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = decode_data
        check_data_options(enable_SMTPUTF8, decode_data)
        asyncore.dispatcher.__init__(self, map=map)
        if localaddr is None:
            return
        try:
            sock_module = package().socket
            family, type_ = sock_module.getaddrinfo(*localaddr, type=sock_module.SOCK_STREAM)[0][:2]
            self.create_socket(family, type_)
            # try to re-use a server port if possible
            self.set_reuse_addr()
            self.bind(localaddr)
            self.listen(self.listen_backlog)
        except BaseException:
            self.close()
            raise
        debug(
            "%s started at %s\n\tLocal addr: %s\n\tRemote addr:%s"
            % (self.__class__.__name__, time.ctime(time.time()), localaddr, remoteaddr)
        )

    def handle_accepted(self, conn: Any, addr: Any) -> None:
        debug("Incoming connection from %s" % repr(addr))
        self.channel_class(
            self,
            conn,
            addr,
            self.data_size_limit,
            self._map,
            self.enable_SMTPUTF8,
            self._decode_data,
        )

    # API for "doing something useful with the message"
    def process_message(self, peer: Any, mailfrom: Any, rcpttos: Any, data: Any, **kwargs: Any) -> Optional[str]:
        """Override this to do something with each message received.

        ``peer``: the client's address, as ``getpeername()`` gives it.
        ``mailfrom``: the address of MAIL FROM (``'<>'`` for the null path).
        ``rcpttos``: the list of RCPT TO addresses.
        ``data``: the message, dot-unstuffed (RFC 5321 4.5.2), lines joined
        with ``'\\n'``, no final newline; ``bytes``, or ``str`` when the
        server was made with ``decode_data=True``.
        ``kwargs``: empty with ``decode_data=True``; otherwise
        ``mail_options`` and ``rcpt_options``, the upper-cased parameters of
        MAIL FROM and of the last RCPT TO, e.g. ``['BODY=8BITMIME']``.

        ``auth_data`` is added to ``kwargs`` when the client authenticated
        (the server has an ``authenticator``): what its ``AuthResult`` said.

        Return None for ``250 OK``, or the complete reply line to send.
        """
        raise NotImplementedError

    # The modern face calls this when an SMTPServer is its handler.
    handle_DATA = bridge.handle_DATA_via_process_message
