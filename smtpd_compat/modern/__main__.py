"""``python -m smtpd_compat.modern``: run the SMTP server command line."""

from __future__ import annotations

from smtpd_compat.modern.main import main

if __name__ == "__main__":
    main()
