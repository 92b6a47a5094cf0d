"""``python -m smtpd_compat``: the command line of ``python -m smtpd``."""

from __future__ import annotations

from smtpd_compat.legacy.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
