"""Every ```python block of MIGRATING.md runs, and prints the ```text block that follows it."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import List, Optional, Tuple

import pytest

from tests.stdlib._legacy_support import REPO_ROOT, env_with_repo

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def _examples() -> List[Tuple[str, Optional[str]]]:
    """(program, expected output or None) for each python block."""
    blocks = [(m.group(1), m.group(2)) for m in _FENCE.finditer((REPO_ROOT / "MIGRATING.md").read_text())]
    examples = []
    for i, (lang, text) in enumerate(blocks):
        if lang == "python":
            following = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
            examples.append((text, following[1] if following[0] == "text" else None))
    return examples


EXAMPLES = _examples()


def test_the_guide_has_examples_for_every_step() -> None:
    assert len(EXAMPLES) == 5  # steps 1-4, then TLS and AUTH on the legacy server
    assert all(expected for _, expected in EXAMPLES)


@pytest.mark.parametrize("program,expected", EXAMPLES, ids=["step%d" % (i + 1) for i in range(len(EXAMPLES))])
def test_example_runs_and_prints_what_the_guide_says(program: str, expected: Optional[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env_with_repo(), cwd="/"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    if expected is not None:
        assert result.stdout == expected
