"""Packaging: setup.cfg has the metadata; this adds the start-up hook files to the wheel's root.

``startup/smtpd_compat.pth`` and ``startup/smtpd_compat.start`` must land in
site-packages itself (beside the top-level ``_smtpd_compat_dropin`` module), where
``site`` reads them at interpreter start-up; package data cannot go there.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

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


setup(cmdclass={"build_py": BuildPyWithStartupFiles})
