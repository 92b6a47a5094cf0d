"""Searching stored messages: the fields a search sees and the ``Query`` matched against them."""

from __future__ import annotations

from typing import Iterator, List, NamedTuple, Optional, Tuple

__all__ = ["Query", "SearchFields"]


class SearchFields(NamedTuple):
    """Case-folded text a query is matched against: headers and envelope together."""

    sender: str
    recipients: str
    subject: str


class Query:
    """A search: words all of which must match, each optionally ``from:``, ``to:`` or ``subject:``.

    Matching is a case-insensitive substring test; a bare word matches sender,
    recipients or subject (headers and envelope).  ``"..."`` groups words.
    """

    FIELDS = ("from", "to", "subject")

    def __init__(self, text: str) -> None:
        self.text = text
        self.terms: List[Tuple[Optional[str], str]] = []
        for word in _split_words(text):
            field, sep, rest = word.partition(":")
            if sep and field.lower() in self.FIELDS:
                if rest:
                    self.terms.append((field.lower(), rest.casefold()))
            else:
                self.terms.append((None, word.casefold()))

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, fields: SearchFields) -> bool:
        by_name = {"from": fields.sender, "to": fields.recipients, "subject": fields.subject}
        for field, needle in self.terms:
            haystacks = [by_name[field]] if field else list(by_name.values())
            if not any(needle in haystack for haystack in haystacks):
                return False
        return True


def _split_words(text: str) -> Iterator[str]:
    # Like shlex, but an unbalanced quote just runs to the end instead of raising.
    word: List[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char.isspace() and not quoted:
            if word:
                yield "".join(word)
            word = []
        else:
            word.append(char)
    if word:
        yield "".join(word)
