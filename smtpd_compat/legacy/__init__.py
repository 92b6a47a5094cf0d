"""The legacy face: Python 3.11's ``smtpd`` on the project's one SMTP engine.

Programs use it as ``import smtpd_compat as smtpd``; the package re-exports
the public names defined here (see ``smtpd_compat/__init__.py``).

* ``names``    module-level constants and the user-settable names read at call time
* ``framed``   an ``async_chat`` whose input goes through the engine's ``Framer``
* ``channel``  ``SMTPChannel``: the stdlib command set and replies
* ``server``   ``SMTPServer``, usable by the asyncore loop and by the modern face
* ``servers``  ``DebuggingServer``, ``PureProxy``, ``MailmanProxy``
* ``bridge``   modern handler hooks (``handle_MAIL`` ...) on a legacy channel
* ``extensions`` STARTTLS, implicit TLS and AUTH, opt-in (stdlib smtpd had none)
* ``tls``      server-side TLS over memory BIOs, for the asyncore channel
* ``cli``      ``python -m smtpd_compat``
"""
