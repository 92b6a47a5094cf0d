"""Windows, simulated on Linux by a prelude a child Python runs first.

``NO_POLL``: ``select`` loses ``poll``/``epoll`` and their constants, so
``selectors`` and asyncio fall back to ``select()`` as on Windows.
``NO_LOOP_SIGNALS``: asyncio's loop refuses ``add_signal_handler`` with
``NotImplementedError``, as Windows' loops do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List

REPO_ROOT = Path(__file__).resolve().parents[2]

NO_POLL = """
import select
for _name in [n for n in dir(select) if n in ("poll", "epoll", "devpoll", "kqueue", "kevent")
              or n.startswith(("POLL", "EPOLL", "KQ_"))]:
    delattr(select, _name)
"""

NO_LOOP_SIGNALS = """
import asyncio.unix_events
def _no_signal_handlers(self, *args, **kwargs):
    raise NotImplementedError  # as on Windows
asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = _no_signal_handlers
"""

WINDOWS_LIKE = NO_POLL + NO_LOOP_SIGNALS


def run_module(module: str) -> str:
    """Code that runs ``python -m module`` with the arguments after ``-c CODE``."""
    return "import runpy\nrunpy.run_module(%r, run_name='__main__', alter_sys=True)\n" % module


def python(prelude: str, module: str, *args: str) -> List[str]:
    """The command line for ``python -m module args`` after ``prelude``."""
    return [sys.executable, "-c", prelude + run_module(module), *args]


def console_script(prelude: str, bin_dir: Path, module: str, *args: str) -> List[str]:
    """The command line of a pip-installed console script calling ``module.main()``:
    its own directory, not the current one, leads ``sys.path``."""
    script = str(bin_dir / module.replace(".", "-"))
    code = prelude + (
        "import sys\n"
        "sys.path[0] = %r\n"
        "sys.argv[0] = %r\n"
        "from %s import main\n"
        "sys.exit(main())\n"
    ) % (str(bin_dir), script, module)
    return [sys.executable, "-c", code, *args]


def child_env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env
