"""The message store shared by the inbox and the pytest plugin: memory and SQLite, one contract."""
from __future__ import annotations

import asyncio
import smtplib
import sqlite3
import threading
from pathlib import Path
from typing import Iterator, List

import pytest

from smtpd_compat.inbox.store import (
    BaseStore,
    MessageGone,
    MessageStore,
    MessageTooLarge,
    Query,
    SQLiteStore,
    StoreEvent,
    StoredMessage,
    StoringHandler,
    header_section,
)
from smtpd_compat.modern.controller import Controller


def mail(subject: str = "Hello", sender: str = "Ann <ann@example.com>", to: str = "bob@example.org",
         body: str = "Body text") -> bytes:
    return ("From: {}\r\nTo: {}\r\nSubject: {}\r\n\r\n{}\r\n".format(sender, to, subject, body)).encode()


def add(store: BaseStore, subject: str = "Hello", **headers: str) -> StoredMessage:
    return store.add(mail(subject, **headers), mail_from="ann@example.com",
                     rcpt_tos=["bob@example.org"], peer=("127.0.0.1", 4242))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseStore]:
    made: BaseStore = MessageStore() if request.param == "memory" else SQLiteStore(str(tmp_path / "inbox.db"))
    yield made
    made.close()


def test_add_get_and_message_fields(store: BaseStore) -> None:
    stored = store.add(mail("Hi there"), mail_from="ann@example.com", rcpt_tos=["bob@example.org", "cy@x.org"],
                       peer=("127.0.0.1", 4242), mail_options=["BODY=8BITMIME"], rcpt_options=["NOTIFY=NEVER"])
    fetched = store.get(stored.id)
    assert fetched == stored
    assert fetched is not None
    assert (fetched.mail_from, fetched.rcpt_tos, fetched.peer) == ("ann@example.com", ("bob@example.org", "cy@x.org"),
                                                                   ("127.0.0.1", 4242))
    assert (fetched.mail_options, fetched.rcpt_options) == (("BODY=8BITMIME",), ("NOTIFY=NEVER",))
    assert fetched.size == len(mail("Hi there"))
    assert (fetched.subject, fetched.sender, fetched.recipients) == ("Hi there", "Ann <ann@example.com>",
                                                                     ("bob@example.org",))
    message = fetched.message
    assert message["Subject"] == "Hi there" and message.get_content().rstrip() == "Body text"
    assert message.envelope is fetched  # type: ignore[attr-defined]
    assert fetched.message is message  # parsed once
    with pytest.raises(AttributeError):
        fetched.raw = b""  # type: ignore[misc]
    assert store.get("999") is None and store.get("not-an-id") is None


def test_order_ids_and_len(store: BaseStore) -> None:
    first, second, third = (add(store, s) for s in ("one", "two", "three"))
    assert [int(m.id) for m in (first, second, third)] == sorted(int(m.id) for m in (first, second, third))
    assert [m.subject for m in store.list()] == ["three", "two", "one"]
    assert [m.subject for m in store.list(limit=2)] == ["three", "two"]
    assert store.list(limit=0) == []
    assert [m.subject for m in store.all()] == [m.subject for m in store] == ["one", "two", "three"]
    assert len(store) == 3 and store.total_bytes == first.size + second.size + third.size


def test_delete_and_clear_never_reuse_ids(store: BaseStore) -> None:
    first = add(store, "one")
    second = add(store, "two")
    assert store.delete(second.id) is True
    assert store.delete(second.id) is False
    assert [m.id for m in store.list()] == [first.id]
    store.clear()
    assert len(store) == 0 and store.total_bytes == 0
    assert int(add(store, "three").id) > int(second.id)


def test_search(store: BaseStore) -> None:
    add(store, "Invoice 42", sender="Billing <bill@shop.example>", to="Ann <ann@example.com>")
    add(store, "Welcome aboard", sender="hello@news.example", to="bob@example.org")
    add(store, "Your invoice is late", sender="bill@shop.example", to="Cy <cy@example.net>")

    def subjects(query: str) -> List[str]:
        return [m.subject for m in store.list(query)]

    assert subjects("invoice") == ["Your invoice is late", "Invoice 42"]
    assert subjects("INVOICE 42") == ["Invoice 42"]  # words are ANDed
    assert subjects('"invoice is"') == ["Your invoice is late"]
    assert subjects("from:news") == ["Welcome aboard"]
    assert subjects("to:cy@") == ["Your invoice is late"]
    assert subjects("subject:welcome") == ["Welcome aboard"]
    # The envelope counts too: every message went to bob@example.org.
    assert subjects("to:bob@example.org") == ["Your invoice is late", "Welcome aboard", "Invoice 42"]
    assert subjects("nothing-like-this") == []
    assert len(subjects("")) == 3
    assert subjects("from:") == subjects("")  # an empty field term matches everything
    assert subjects("unknown:x") == []  # an unknown prefix is just a word


def test_query_unbalanced_quote_and_unicode() -> None:
    query = Query('from:"Zoë Ünlü')
    assert query.terms == [("from", "zoë ünlü")]


def test_caps_drop_oldest_first() -> None:
    store = MessageStore(max_messages=2)
    ids = [add(store, s).id for s in ("one", "two", "three")]
    assert [m.id for m in store.all()] == ids[1:]
    size = len(mail("x"))
    by_bytes = MessageStore(max_bytes=2 * size + 1)
    for s in "abc":
        add(by_bytes, s)
    assert [m.subject for m in by_bytes.all()] == ["b", "c"]
    with pytest.raises(MessageTooLarge):
        by_bytes.add(b"x" * (2 * size + 2), mail_from="", rcpt_tos=[])
    assert len(by_bytes) == 2


def test_sqlite_survives_restart_and_applies_caps_on_open(tmp_path: Path) -> None:
    path = str(tmp_path / "inbox.db")
    store = SQLiteStore(path)
    kept = [add(store, s) for s in ("one", "two", "three")]
    store.close()
    reopened = SQLiteStore(path, max_messages=2)
    try:
        assert reopened.all() == kept[1:]
        assert reopened.all()[0].peer == ("127.0.0.1", 4242)
        assert [m.subject for m in reopened.list("subject:three")] == ["three"]
        assert int(add(reopened, "four").id) > int(kept[-1].id)
    finally:
        reopened.close()


def test_sqlite_listings_read_content_on_first_use(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "inbox.db"))
    try:
        kept, dropped = add(store, "kept"), add(store, "dropped")
        listed = {m.subject: m for m in store.list()}  # subjects come from the header section alone
        assert listed["kept"].raw == kept.raw and listed["kept"].size == kept.size
        store.delete(dropped.id)
        assert listed["dropped"].subject == "dropped"
        with pytest.raises(MessageGone):
            listed["dropped"].raw
    finally:
        store.close()


def test_header_section() -> None:
    assert header_section(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore") == b"A: 1\r\nB: 2\r\n"
    assert header_section(b"A: 1\nB: 2\n\nbody") == b"A: 1\nB: 2\n"
    assert header_section(b"A: 1\r\n") == b"A: 1\r\n"


def test_sqlite_refuses_unknown_schema(tmp_path: Path) -> None:
    path = str(tmp_path / "other.db")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(ValueError, match="schema version 99"):
        SQLiteStore(path)


def test_wait_for_existing_and_future_messages(store: BaseStore) -> None:
    add(store, "old one")
    assert store.wait_for(timeout=0).subject == "old one"
    with pytest.raises(TimeoutError):
        store.wait_for(query="subject:later", timeout=0.05)

    results: List[StoredMessage] = []
    started = threading.Event()

    def waiter() -> None:
        started.set()
        results.append(store.wait_for(lambda m: "later" in m.subject, timeout=30))

    thread = threading.Thread(target=waiter)
    thread.start()
    started.wait()
    add(store, "not this")
    add(store, "later, this")
    thread.join(30)
    assert [m.subject for m in results] == ["later, this"]


def test_wait_for_raises_the_predicates_exception(store: BaseStore) -> None:
    add(store, "x")

    def broken(message: StoredMessage) -> bool:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        store.wait_for(broken, timeout=0)


def test_wait_for_async(store: BaseStore) -> None:
    async def scenario() -> StoredMessage:
        waiting = asyncio.ensure_future(store.wait_for_async(query="subject:async", timeout=30))
        await asyncio.sleep(0)
        # Added from another thread, as the SMTP server does.
        await asyncio.get_running_loop().run_in_executor(None, add, store, "async arrival")
        return await waiting

    assert asyncio.run(scenario()).subject == "async arrival"

    async def times_out() -> None:
        await store.wait_for_async(query="subject:never", timeout=0.05)

    with pytest.raises(TimeoutError):
        asyncio.run(times_out())


def test_subscription_events(store: BaseStore) -> None:
    with store.subscribe() as events:
        first = add(store, "one")
        store.delete(first.id)
        store.clear()
        got = [events.get(5) for _ in range(3)]
        assert [(e.kind, e.id) for e in got if e] == [("added", first.id), ("deleted", first.id), ("cleared", None)]
        assert got[0] is not None and got[0].message == first
        assert events.get(0) is None
    add(store, "after close")  # a closed subscription is no longer called


def test_subscription_overflow_and_cap_evictions_are_events() -> None:
    store = MessageStore(max_messages=1)
    with store.subscribe(max_pending=3) as events:
        first = add(store, "one")
        add(store, "two")  # evicts "one": added + deleted
        assert [(e.kind, e.id) for e in (events.get(1), events.get(1), events.get(1))] == [
            ("added", first.id), ("added", str(int(first.id) + 1)), ("deleted", first.id)]
        for s in "abcd":
            add(store, s)
        assert events.get(1) == StoreEvent("overflow")


def test_a_broken_listener_loses_nothing(store: BaseStore) -> None:
    def broken(event: StoreEvent) -> None:
        raise RuntimeError("listener bug")

    remove = store.add_listener(broken)
    add(store, "kept")
    remove()
    assert [m.subject for m in store.all()] == ["kept"]


def test_storing_handler_behind_a_controller(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "inbox.db"), max_bytes=5000)
    controller = Controller(StoringHandler(store), hostname="127.0.0.1", port=0)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port) as client:
            client.sendmail("ann@example.com", ["bob@example.org"], mail("via smtp").decode().replace("\r\n", "\n"))  # smtplib makes CRLF
            with pytest.raises(smtplib.SMTPDataError) as too_big:
                client.sendmail("ann@example.com", ["bob@example.org"], b"Subject: big\r\n\r\n" + (b"x" * 60 + b"\r\n") * 100)
        assert too_big.value.smtp_code == 552
        (stored,) = store.all()
        assert stored.subject == "via smtp" and stored.raw.endswith(b"Body text\r\n")
        assert stored.peer is not None and stored.peer[0] == "127.0.0.1"
    finally:
        controller.stop()
        store.close()


def test_storing_handler_reply_names_the_id() -> None:
    store = MessageStore()
    controller = Controller(StoringHandler(store), hostname="127.0.0.1", port=0)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port) as client:
            client.ehlo()
            client.mail("a@x.org")
            client.rcpt("b@x.org")
            code, reply = client.data(mail())
        assert (code, reply) == (250, b"OK: queued as 1")
    finally:
        controller.stop()
