"""The modern face's connection hooks, honoured on an ``SMTPServer``
subclass by its channels (through the bridge's views, as the other hooks).

``handle_CONNECT(server, session)`` runs before the greeting: a reply it
returns (``"554 5.7.1 Access denied"``) goes out instead, then the
connection closes; None proceeds.  ``handle_DISCONNECT(server, session)``
runs once when the channel closes, however the session ended.
"""

from __future__ import annotations

from typing import Any, Optional

from smtpd_compat.legacy import bridge
from smtpd_compat.legacy.names import debug

__all__ = ["connect_refusal", "disconnected"]


def connect_refusal(channel: Any) -> Optional[str]:
    """The reply refusing ``channel``'s connection, or None to greet it."""
    hook = bridge.find_hook(channel.smtp_server, "CONNECT")
    if hook is None:
        return None
    context = channel._hook_context()
    try:
        status = context.resolve(hook(context.server, context.session))
    except Exception as error:
        debug("handle_CONNECT failed:", repr(error))
        return "421 Error: local error in processing"
    return None if status is None else str(status)


def disconnected(channel: Any) -> None:
    """Run ``handle_DISCONNECT`` once for ``channel`` (it is closing)."""
    if getattr(channel, "_disconnect_ran", True):
        return  # no connection was set up, or the hook ran already
    channel._disconnect_ran = True
    hook = bridge.find_hook(channel.smtp_server, "DISCONNECT")
    if hook is None:
        return
    context = channel._hook_context()
    try:
        context.resolve(hook(context.server, context.session))
    except Exception as error:
        debug("handle_DISCONNECT failed:", repr(error))
