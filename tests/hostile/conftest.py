"""Fixtures of the hostile-input suite: a server of each face."""

from __future__ import annotations

from typing import Any, Callable, Iterator, List

import pytest

from ._faces import FACES, Face

MakeFace = Callable[..., Face]


def _factory(name: str) -> Iterator[MakeFace]:
    made: List[Face] = []

    def make(**options: Any) -> Face:
        face = FACES[name](**options)
        made.append(face)
        return face

    try:
        yield make
    finally:
        for face in made:
            face.close()


@pytest.fixture(params=["modern", "legacy"])
def make_face(request: pytest.FixtureRequest) -> Iterator[MakeFace]:
    """``make_face(**options)`` -> a running server of the parametrized face."""
    yield from _factory(request.param)


@pytest.fixture
def face(make_face: MakeFace) -> Face:
    """A server of each face with default options."""
    return make_face()


@pytest.fixture
def make_modern() -> Iterator[MakeFace]:
    """For probes of what only the modern face offers (STARTTLS, AUTH, bare_newline)."""
    yield from _factory("modern")


@pytest.fixture
def make_legacy() -> Iterator[MakeFace]:
    """For what is particular to the legacy face."""
    yield from _factory("legacy")
