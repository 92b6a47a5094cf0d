"""The modern face: an asyncio SMTP server with aiosmtpd 1.4's public API.

Code written for aiosmtpd runs here by changing ``aiosmtpd`` to
``smtpd_compat.modern`` in its imports.
"""

from __future__ import annotations

#: The aiosmtpd API level this face mirrors (it also names the ident).
__version__ = "1.4.6"
