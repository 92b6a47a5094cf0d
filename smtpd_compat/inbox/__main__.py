"""``python -m smtpd_compat.inbox``: SMTP on 127.0.0.1:1025, the inbox on http://127.0.0.1:8025/."""

from __future__ import annotations

from smtpd_compat.inbox.main import main

if __name__ == "__main__":
    main()
