"""``Spooler``: a stock handler that streams each message to a file.

With ``handle_DATA_CHUNK`` the server hands a message over piece by piece
as it arrives (DATA unstuffed, BDAT chunks as sent) and never holds it
whole, so a message of any size passes in bounded memory.  ``Spooler``
writes the pieces to a temporary file in ``directory`` and, once the
message is accepted, renames it to ``<directory>/<uuid>.eml``; a message
that is refused, cut off or abandoned (RSET, disconnect before BDAT LAST)
leaves no file behind.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import weakref
from pathlib import Path
from typing import Any, List, Optional, Union

__all__ = ["Spooler"]


class Spooler:
    """Spool every accepted message to ``directory`` (see the module doc)."""

    def __init__(self, directory: Union[str, "os.PathLike[str]"]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        #: The files of the accepted messages, in order.
        self.paths: List[Path] = []

    async def handle_DATA_CHUNK(self, server: Any, session: Any, envelope: Any, data: Optional[bytes]) -> None:
        spool: Any = getattr(envelope, "spool_file", None)
        if data is None:  # refused or cut off: forget it
            if spool is not None:
                _discard(spool)
                envelope.spool_file = None
            return
        if spool is None:
            spool = tempfile.NamedTemporaryFile(dir=self.directory, prefix=".incoming-", delete=False)
            envelope.spool_file = spool
            # An envelope dropped before handle_DATA (RSET, disconnect in a
            # BDAT transaction) takes its partial file with it.
            weakref.finalize(envelope, _discard, spool)
        spool.write(data)  # to the page cache: short enough for the loop

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        spool: Any = getattr(envelope, "spool_file", None)
        if spool is None:
            spool = tempfile.NamedTemporaryFile(dir=self.directory, prefix=".incoming-", delete=False)
        envelope.spool_file = None
        spool.close()
        path = self.directory / f"{uuid.uuid4().hex}.eml"
        os.replace(spool.name, path)
        envelope.spool_path = path
        self.paths.append(path)
        return "250 OK"


def _discard(spool: Any) -> None:
    spool.close()
    try:
        os.unlink(spool.name)
    except FileNotFoundError:
        pass  # accepted and renamed already
