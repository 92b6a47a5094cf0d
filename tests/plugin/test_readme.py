"""The README's plugin examples run as they are written, so they cannot drift."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.plugin.conftest import RunPlugin

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE = re.compile(r"<!-- pytest-plugin example -->\n```python\n(.*?)```", re.DOTALL)


def test_readme_examples_pass(run_plugin: RunPlugin, pytester: pytest.Pytester) -> None:
    examples = EXAMPLE.findall(README.read_text(encoding="utf-8"))
    assert len(examples) == 3
    pytester.makepyfile(**{f"test_readme_{n}": source for n, source in enumerate(examples[1:], 2)})
    result = run_plugin(examples[0])
    result.assert_outcomes(passed=sum(source.count("\ndef test_") for source in examples))
