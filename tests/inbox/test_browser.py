"""The inbox page in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

``SMTPD_COMPAT_BROWSER``: ``1`` runs these tests and fails if the browser is missing (tox's py312
sets it, so CI runs them once), ``0`` skips them (tox's other environments), unset runs them when
Selenium, ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` are all there.  Screenshots go to
``$SMTPD_COMPAT_ARTIFACTS`` (default ``.artifacts/`` in the repository, git-ignored).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

from smtpd_compat.inbox.server import Inbox
from tests.inbox._helpers import PNG, build, send

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TITLE = "smtpd_compat inbox"
ARTIFACTS = Path(os.environ.get("SMTPD_COMPAT_ARTIFACTS") or Path(__file__).resolve().parents[2] / ".artifacts")


def _missing() -> str:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in the test extra: pip install .[test])"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return "{} not found (apt-get install -y {})".format(path, package)
    return ""


_WANTED = os.environ.get("SMTPD_COMPAT_BROWSER", "")
if _WANTED == "0":
    pytestmark = pytest.mark.skip(reason="SMTPD_COMPAT_BROWSER=0: browser tests run in tox's py312 environment only")
elif _WANTED != "1" and _missing():
    pytestmark = pytest.mark.skip(reason=_missing())

if not _missing():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait


@pytest.fixture(scope="module")
def browser() -> Iterator["WebDriver"]:
    missing = _missing()
    assert not missing, "SMTPD_COMPAT_BROWSER=1 but " + missing
    profile = tempfile.mkdtemp(prefix="inbox-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,820",
                 "--user-data-dir=" + profile):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager is never asked to download anything.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def until(driver: "WebDriver", condition: Callable[["WebDriver"], Any]) -> Any:
    """Wait for the page to get there; the bound is generous, only to end a broken test."""
    return WebDriverWait(driver, 30, poll_frequency=0.05).until(condition)


def screenshot(driver: "WebDriver", name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))


def open_inbox(driver: "WebDriver", inbox: Inbox) -> None:
    driver.get(inbox.url)
    until(driver, lambda d: d.find_element(By.ID, "live").text == "live")
    driver.execute_script("window.__sameDocument = true")


def rows(driver: "WebDriver") -> List[str]:
    """The subjects listed, read in one go (the list is re-rendered as events arrive)."""
    subjects: List[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#messages .m-subject'), (e) => e.textContent)")
    return subjects


def test_list_updates_live_and_message_opens(browser: "WebDriver", inbox: Inbox) -> None:
    send(inbox, build("Monthly report", sender="Reports <reports@example.com>"))
    send(inbox, build("Reset your password", sender="Accounts <no-reply@example.com>", to="Cy <cy@example.net>"))
    open_inbox(browser, inbox)
    assert rows(browser) == ["Reset your password", "Monthly report"]

    send(inbox, build("Welcome aboard, Ann!", sender="Shop <hello@shop.example>", to="Ann <ann@example.com>",
                      text="Hi Ann,\n\nthanks for signing up.\n",
                      html='<div style="font-family:sans-serif;max-width:520px">'
                           '<p><img id="logo" alt="logo" src="cid:logo@shop.example" width="520" height="8"></p>'
                           '<h2 style="color:#2e5bff">Welcome aboard</h2><p>Hi <b>Ann</b>, thanks for signing up.'
                           ' Your order <i>#1042</i> ships tomorrow.</p><table style="border-collapse:collapse">'
                           '<tr><td style="padding:4px 12px;background:#eef2ff">Plan</td><td>Team, yearly</td></tr>'
                           '<tr><td style="padding:4px 12px;background:#eef2ff">Seats</td><td>5</td></tr></table></div>',
                      inline_images=[("logo@shop.example", PNG)],
                      attachments=[("terms.pdf", "application/pdf", b"%PDF-1.4 terms")]))
    until(browser, lambda d: rows(d)[0] == "Welcome aboard, Ann!")
    assert browser.execute_script("return window.__sameDocument") is True  # no reload happened
    assert browser.find_element(By.ID, "count").text == "3 messages"
    screenshot(browser, "inbox-list.png")

    browser.find_element(By.CSS_SELECTOR, "#messages li").click()
    until(browser, lambda d: d.find_element(By.ID, "v-subject").text == "Welcome aboard, Ann!")
    frame = browser.find_element(By.ID, "v-html")
    assert frame.get_attribute("sandbox") == ""  # present and empty: no scripts, no forms, no popups
    browser.switch_to.frame(frame)
    try:
        assert until(browser, lambda d: d.find_element(By.TAG_NAME, "b").text) == "Ann"
        # The inline image (cid:) was served as a data: URL and decoded.
        assert until(browser, lambda d: d.find_element(By.ID, "logo").get_property("naturalWidth")) == 2
    finally:
        browser.switch_to.default_content()
    screenshot(browser, "inbox-message.png")

    browser.find_element(By.CSS_SELECTOR, '[data-tab="text"]').click()
    assert browser.find_element(By.ID, "v-text").text.startswith("Hi Ann,")
    browser.find_element(By.CSS_SELECTOR, '[data-tab="attachments"]').click()
    links = browser.find_elements(By.CSS_SELECTOR, "#v-attachments a")
    assert [link.text for link in links] == ["<logo@shop.example>", "terms.pdf"]
    assert all(link.get_attribute("download") == "" for link in links)

    search = browser.find_element(By.ID, "search")
    search.send_keys("from:reports")
    until(browser, lambda d: rows(d) == ["Monthly report"])
    search.clear()
    search.send_keys(" ")  # an input event with an empty query: everything again
    until(browser, lambda d: len(rows(d)) == 3)


def test_delete_one_and_all_from_the_page(browser: "WebDriver", inbox: Inbox) -> None:
    for subject in ("first", "second", "third"):
        send(inbox, build(subject))
    open_inbox(browser, inbox)
    browser.find_element(By.CSS_SELECTOR, "#messages li").click()
    until(browser, lambda d: d.find_element(By.ID, "v-subject").text == "third")
    browser.find_element(By.ID, "v-delete").click()
    until(browser, lambda d: rows(d) == ["second", "first"])
    assert not browser.find_element(By.ID, "view-pane").is_displayed()
    browser.find_element(By.ID, "delete-all").click()
    browser.switch_to.alert.accept()
    until(browser, lambda d: rows(d) == [] and d.find_element(By.ID, "empty").is_displayed())
    assert len(inbox.store) == 0


class _Listener(BaseHTTPRequestHandler):
    """Stands for the internet: a hostile message must never make the browser call it."""

    hits: List[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def outside() -> Iterator[ThreadingHTTPServer]:
    _Listener.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def hostile_html(base: str) -> str:
    return """<html><head>
<meta http-equiv="refresh" content="0;url={b}/refresh">
<link rel="stylesheet" href="{b}/style.css"><link rel="prefetch" href="{b}/prefetch">
<style>@import url({b}/import.css); body {{ background: url({b}/background.png) }}</style>
<base href="{b}/base/">
</head><body>
<script>parent.__pwned = "script"; top.document.title = "pwned"; document.title = "pwned";</script>
<script src="{b}/script.js"></script>
<img src="{b}/pixel.png"><img src="relative.png"><img src="x" onerror="parent.__pwned = 'onerror'">
<svg onload="parent.__pwned = 'svg'"><image href="{b}/svg.png"/></svg>
<a id="js-link" href="javascript:parent.__pwned = 'link'">click me</a>
<form action="{b}/form" method="post"><input id="submit" type="submit" value="Send"></form>
<iframe src="{b}/frame"></iframe><object data="{b}/object"></object>
<video src="{b}/video.mp4" autoplay></video><audio src="{b}/audio.mp3" autoplay></audio>
<p id="marker">Still just text</p>
</body></html>""".format(b=base)


def test_hostile_message_runs_no_script_and_loads_nothing(
        browser: "WebDriver", inbox: Inbox, outside: ThreadingHTTPServer) -> None:
    base = "http://127.0.0.1:{}".format(outside.server_address[1])
    message = build(text="<script>window.__pwned = 'text'</script>", html=hostile_html(base),
                    sender='"<script>window.__pwned=2</script>" <evil@example.org>')
    del message["Subject"]
    # Written by hand: an encoded CR LF that decodes into a would-be Bcc header, and markup.
    subject = b"Subject: =?utf-8?q?Hi=0D=0ABcc:_victim@example.org_<img_src=3Dx_onerror=3Dwindow.=5F=5Fpwned=3D1>?=\r\n"
    send(inbox, subject + message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
    open_inbox(browser, inbox)
    browser.find_element(By.CSS_SELECTOR, "#messages li").click()
    until(browser, lambda d: "victim@example.org" in d.find_element(By.ID, "v-subject").text)
    frame = browser.find_element(By.ID, "v-html")
    browser.switch_to.frame(frame)
    try:
        until(browser, lambda d: d.find_element(By.ID, "marker").text == "Still just text")
        browser.find_element(By.ID, "js-link").click()
        browser.find_element(By.ID, "submit").click()
    finally:
        browser.switch_to.default_content()
    screenshot(browser, "inbox-hostile.png")
    browser.find_element(By.CSS_SELECTOR, '[data-tab="text"]').click()

    # The header text arrives as text: no element was made from it anywhere on the page.
    subject = browser.find_element(By.ID, "v-subject").text
    assert subject == "Hi Bcc: victim@example.org <img src=x onerror=window.__pwned=1>"
    assert browser.find_element(By.CSS_SELECTOR, "#messages .m-subject").text == subject
    assert "<script>window.__pwned=2</script>" in browser.find_element(By.CSS_SELECTOR, "#messages .m-from").text
    assert browser.find_element(By.ID, "v-text").text == "<script>window.__pwned = 'text'</script>"
    assert browser.execute_script("return document.querySelectorAll('main img, main script, main svg').length") == 0
    assert browser.execute_script("return window.__pwned") is None
    assert browser.title == TITLE
    assert browser.execute_script("return window.__sameDocument") is True

    # A request we make ourselves shows the listener works; it must be the only one it ever saw.
    urllib.request.urlopen(base + "/control", timeout=30).close()
    assert _Listener.hits == ["/control"]


def test_ten_megabyte_message(browser: "WebDriver", inbox: Inbox) -> None:
    line = "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 abcdefghijklmn\n"
    body = line * (10 * 1024 * 1024 // len(line))
    send(inbox, build("Ten megabytes", text=body))
    open_inbox(browser, inbox)
    browser.find_element(By.CSS_SELECTOR, "#messages li").click()
    until(browser, lambda d: d.find_element(By.ID, "v-subject").text == "Ten megabytes")
    assert "only its first part is shown" in browser.find_element(By.ID, "v-notice").text
    shown = browser.execute_script("return document.getElementById('v-text').textContent.length")
    assert shown == 1 << 20
    browser.find_element(By.CSS_SELECTOR, '[data-tab="raw"]').click()
    until(browser, lambda d: "use Download .eml" in d.find_element(By.ID, "v-raw").text)
    screenshot(browser, "inbox-10mb.png")
