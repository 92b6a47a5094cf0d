"""The README's inbox example runs as it is written."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_inbox_example() -> None:
    (example,) = re.findall(r"<!-- inbox example -->\n```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    exec(compile(example, "README.md (inbox example)", "exec"), {})
