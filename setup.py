"""Packaging: setup.cfg has the metadata; this puts the start-up hook files in site-packages.

``startup/smtpd_compat.pth`` and ``startup/smtpd_compat.start`` must land in
site-packages itself (beside the top-level ``_smtpd_compat_dropin`` module), where
``site`` reads them at interpreter start-up; package data cannot go there.  A
regular wheel gets them through ``build_py``; an editable one (``pip install -e``)
through the strategy that writes the editable wheel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from setuptools import setup
from setuptools.command.build_py import build_py

STARTUP_FILES = sorted(Path(__file__).resolve().parent.joinpath("startup").glob("smtpd_compat.*"))


class BuildPyWithStartupFiles(build_py):
    """``build_py`` that also copies the start-up hook files to the root of ``build_lib``."""

    def run(self) -> None:
        super().run()
        for source in STARTUP_FILES:
            self.copy_file(str(source), str(Path(self.build_lib, source.name)))

    def get_outputs(self, include_bytecode: bool = True) -> List[str]:
        return list(super().get_outputs(include_bytecode)) + [str(Path(self.build_lib, s.name)) for s in STARTUP_FILES]


COMMANDS: Dict[str, Any] = {"build_py": BuildPyWithStartupFiles}

try:
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # setuptools < 64: no PEP 660 editable installs at all
    pass
else:

    class _StrategyWithStartupFiles:
        """Wraps setuptools' editable strategy: the wheel it writes also gets the hook files."""

        def __init__(self, strategy: Any) -> None:
            self.strategy = strategy

        def __call__(self, wheel: Any, files: List[str], mapping: Dict[str, str]) -> None:
            self.strategy(wheel, files, mapping)
            for source in STARTUP_FILES:
                wheel.writestr(source.name, source.read_bytes())

        def __enter__(self) -> "_StrategyWithStartupFiles":
            self.strategy.__enter__()
            return self

        def __exit__(self, *exc: Any) -> None:
            self.strategy.__exit__(*exc)

    class EditableWheelWithStartupFiles(editable_wheel):  # type: ignore[misc]
        def _select_strategy(self, *args: Any, **kwargs: Any) -> Any:
            return _StrategyWithStartupFiles(super()._select_strategy(*args, **kwargs))

    COMMANDS["editable_wheel"] = EditableWheelWithStartupFiles

setup(cmdclass=COMMANDS)
