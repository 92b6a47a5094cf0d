"""The fuzz target's invariants over its committed seed corpus (fuzz/corpus),
so every seed, and every crash reproducer added there, is checked in CI
without atheris.  ``python fuzz/run.py --minutes N`` fuzzes for real."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
SEEDS = sorted((FUZZ / "corpus").iterdir())


def load_target() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_target", FUZZ / "target.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TARGET = load_target()


def test_the_corpus_is_small_and_present() -> None:
    assert 12 <= len(SEEDS) <= 40
    assert all(seed.stat().st_size <= 4096 for seed in SEEDS)


@pytest.mark.parametrize("seed", SEEDS, ids=[seed.name for seed in SEEDS])
def test_seed_keeps_every_invariant(seed: Path) -> None:
    TARGET.check_one(seed.read_bytes())
