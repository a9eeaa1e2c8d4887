"""``detente serve`` in headless Chromium: a whole game, two games at once, hostile text shown as text.

The server runs in this process (uvicorn on a free loopback port, in a thread); the browser is Debian's
``chromium`` driven by playwright (tests/browser.py: skipped locally without them, a failure under CI).
"""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn

from browser import ARTIFACTS, BROWSER_ARGS, CHROMIUM, browser_or_skip
from detente.report import write_report
from detente.serve import Sessions, create_app

HOSTILE = "<script>window.pwned=1</script>"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The base URL of a running ``detente serve`` app, and the folder it saves finished games in."""
    saved = tmp_path_factory.mktemp("games")
    app = create_app(Sessions(save_root=saved), allowed_hosts=("127.0.0.1",))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield {"url": f"http://127.0.0.1:{port}", "saved": saved}
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    sync_playwright = browser_or_skip()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser):
    """Pages that record script errors and dialogs; each test checks there were none."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    trouble: list[str] = []

    def make():
        page = context.new_page()
        page.on("pageerror", lambda error: trouble.append(f"page error: {error}"))
        page.on("dialog", lambda dialog: (trouble.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        return page

    yield make
    context.close()
    assert trouble == []


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def start(page, url: str, game: str, against: str, rounds: int | None = None) -> None:
    page.goto(url)
    page.select_option("#game", game)
    page.fill("#against", against)
    if rounds is not None:
        page.fill("#n-rounds", str(rounds))
    page.click("#start-button")
    expect(page.locator("#answer")).to_be_visible()


def send(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")
    expect(page.locator("#send")).to_be_enabled()


def test_an_ipd_game_against_tft_is_played_to_its_final_score(server, new_page):
    page = new_page()
    start(page, server["url"], "ipd", "tft", rounds=3)
    assert page.url.startswith(server["url"] + "/play/")
    rules = page.locator("#log li.game pre").first
    expect(rules).to_contain_text("You are playing a game with another agent")
    expect(page.locator("#hint")).to_have_text("type A or B")
    send(page, "a")
    expect(page.locator("#rounds tbody tr")).to_have_count(1)
    send(page, "maybe")
    refused = page.locator("#refused")
    expect(refused).to_have_text("Not accepted: no option found; write exactly one of <A>, <B>")
    expect(page.locator("#rounds tbody tr")).to_have_count(1)
    send(page, "B")
    expect(page.locator("#score")).to_have_text("Score: you 8, tft 3")
    expect(refused).to_be_hidden()
    send(page, "b")
    expect(page.locator("#final")).to_have_text("Final score: you 9, tft 4 (you scored more)")
    expect(page.locator("#answer")).to_be_hidden()
    expect(page.locator("#saved")).to_contain_text(str(server["saved"]))
    assert page.locator("#rounds tbody tr").nth(2).inner_text().split("\t") == ["3", "<B>", "<B>", "1", "1"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve_ipd.png"), full_page=True)


def test_two_pages_play_two_games_at_once_without_mixing_them(server, new_page):
    left, right = new_page(), new_page()
    start(left, server["url"], "ipd", "alld", rounds=2)
    start(right, server["url"], "ipd", "allc", rounds=2)
    assert left.url != right.url
    send(left, "A")
    send(right, "B")
    send(right, "B")
    expect(right.locator("#final")).to_have_text("Final score: you 10, allc 0 (you scored more)")
    expect(left.locator("#score")).to_have_text("Score: you 0, alld 5")
    left.reload()  # the game lives on the server, under the page's own URL
    expect(left.locator("#score")).to_have_text("Score: you 0, alld 5")
    send(left, "B")
    expect(left.locator("#final")).to_have_text("Final score: you 1, alld 6 (alld scored more)")


def test_a_script_written_in_trust_and_split_shows_as_text_on_the_page_and_in_the_report(server, new_page):
    page = new_page()
    start(page, server["url"], "trust_split", "greedy", rounds=1)
    expect(page.locator("#hint")).to_have_text("type your message, at most 500 characters")
    send(page, HOSTILE)
    expect(page.locator("#log li.you pre").first).to_have_text(HOSTILE)
    # before or after the person's message, depending on who speaks first (a random seed)
    heard = page.locator("#log li.game pre", has_text='The other agent says: "I will keep all the coins."')
    expect(heard).to_have_count(1)
    send(page, "7")
    expect(page.locator("#final")).to_be_visible()
    assert page.locator("#log script, #rounds script").count() == 0
    assert page.evaluate("window.pwned") is None
    assert page.locator("#rounds tbody td").nth(1).inner_text().startswith(HOSTILE)

    folder = page.locator("#saved").inner_text().removeprefix("Saved in ").split(" (")[0]
    report = write_report(folder)
    page.goto(report.as_uri())
    raw = page.locator("#game-view .raw", has_text="window.pwned")
    expect(raw).to_have_text(f"<<message_start>>{HOSTILE}<<message_end>>")
    assert page.locator("#game-view script").count() == 0
    assert page.evaluate("window.pwned") is None


def test_an_unknown_opponent_is_a_clear_error_on_the_page(server, new_page):
    page = new_page()
    page.goto(server["url"])
    page.fill("#against", "nosuch")
    page.click("#start-button")
    error = page.locator("#start-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("no scripted strategy 'nosuch' for game 'ipd'; known: allc, alld, tft")
    expect(page.locator("#play")).to_be_hidden()
