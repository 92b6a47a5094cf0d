"""A browsable inbox: ``python -m smtpd_compat.inbox`` (SMTP, a web page, a JSON API)."""
