"""The web page in a real Chromium (Debian's, driven by Playwright's Python API): what it shows is what the API answers.

Skipped, with the reason, where Playwright or Chromium is missing; CI (.ci/run) installs both.
Set DNNH_CHROMIUM to use another Chromium binary.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import threading
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="the serve extra is not installed: pip install -e '.[serve]'")

from support.builders import png_bytes

CHROMIUM = os.environ.get("DNNH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
K = 12

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[browser]'")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve]'")
if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set DNNH_CHROMIUM)", allow_module_level=True)


@contextlib.contextmanager
def serving(app):
    """``app`` in a uvicorn thread on 127.0.0.1, on a port the kernel picked; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()
        app.state.service.close()


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    """The app, read-only (no token)."""
    from dnnh.serve import create_app

    with serving(create_app(tiny_run, store=tmp_path_factory.mktemp("browser-store") / "s")) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15000)
    pg.goto(server + "/")
    pg.wait_for_selector("body[data-ready='true']")
    yield pg
    context.close()


def api(server: str, method: str, path: str, body: bytes | None = None, ctype: str | None = None) -> dict:
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
        resp = conn.getresponse()
        return json.loads(resp.read())
    finally:
        conn.close()


def api_search(server: str, data: bytes, k: int) -> dict:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return api(server, "POST", f"/api/search?k={k}", body, f"multipart/form-data; boundary={boundary}")


def shown(pg) -> list[tuple[int, int]]:
    return [(int(b.get_attribute("data-id")), int(b.get_attribute("data-distance")))
            for b in pg.locator("#results button.result").all()]


def wait_for_results(pg, n: int) -> None:
    pg.wait_for_function("n => document.querySelectorAll('#results button.result').length === n "
                         "&& !document.body.hasAttribute('aria-busy')", arg=n)


@pytest.fixture(scope="module")
def query_file(tmp_path_factory, tiny_run):
    from dnnh.data.digits import load_digits

    split = json.loads((tiny_run / "split.json").read_text())
    path = tmp_path_factory.mktemp("query") / "query-digit.png"
    path.write_bytes(png_bytes(load_digits().images[split["query"][3]]))
    return path


def test_upload_shows_what_the_api_answers_and_a_click_searches_by_the_result(page, server, query_file, tmp_path):
    page.get_by_label("Results (k)").fill(str(K))
    page.get_by_label("Choose an image").set_input_files(str(query_file))
    wait_for_results(page, K)
    expected = api_search(server, query_file.read_bytes(), K)
    assert shown(page) == [(r["id"], r["distance"]) for r in expected["results"]]
    assert page.locator("#code-bits").get_attribute("data-bits") == expected["bits"]
    assert page.locator("#code-bits .bit").count() == 12 and page.locator("#code-hex").inner_text() == expected["code"]
    assert page.locator("#query-image").is_visible() and page.locator("#error").is_hidden()
    labels = page.locator("#results .label").all_inner_texts()
    assert labels == [f"label {r['label']}" for r in expected["results"]]
    page.wait_for_function("() => [...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth >= 96)")
    page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
    assert (tmp_path / "serve.png").stat().st_size > 5000

    target = expected["results"][4]["id"]
    page.locator(f"#results button[data-id='{target}']").click()
    page.wait_for_selector(f"#query-view[data-item-id='{target}']")
    wait_for_results(page, K)
    similar = api(server, "GET", f"/api/items/{target}/similar?k={K}")
    assert shown(page) == [(r["id"], r["distance"]) for r in similar["results"]]
    assert page.locator("#code-bits").get_attribute("data-bits") == similar["bits"]
    assert f"Item #{target}" in page.locator("#query-caption").inner_text()
    if os.environ.get("DNNH_DOCS_SCREENSHOT"):  # refresh the README's picture: DNNH_DOCS_SCREENSHOT=docs/img/serve.png
        shutil.copyfile(tmp_path / "serve.png", os.environ["DNNH_DOCS_SCREENSHOT"])


def test_the_controls_work_from_the_keyboard(page, query_file):
    page.get_by_label("Choose an image").set_input_files(str(query_file))
    wait_for_results(page, 12)  # the page's default k
    k = page.get_by_label("Results (k)")
    k.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("5")
    page.keyboard.press("Tab")  # leaving the field commits it: the search runs again
    wait_for_results(page, 5)
    radius = page.get_by_label("Max. Hamming distance (radius)")
    assert radius.evaluate("el => el === document.activeElement")
    page.keyboard.type("0")
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('within distance 0')")
    assert all(d == 0 for _, d in shown(page))
    first = page.locator("#results button.result").first
    first_id = first.get_attribute("data-id")
    first.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#query-view[data-item-id='{first_id}']")
    assert page.evaluate("() => document.activeElement.id") == "results-heading"


def test_a_dropped_file_is_searched_and_a_bad_one_shows_the_server_message(page, query_file):
    data = list(query_file.read_bytes())
    drop = """([bytes, name, type]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], name, {type}));
        document.getElementById('drop-zone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
    }"""
    page.evaluate(drop, [data, "dropped.png", "image/png"])
    wait_for_results(page, 12)
    assert "dropped.png" in page.locator("#query-caption").inner_text()
    page.evaluate(drop, [list(b"this is not an image"), "notes.txt", "text/plain"])
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "Error 415" in error.inner_text() and "not an image" in error.inner_text()
    assert page.locator("#results button.result").count() == 0
    assert page.get_attribute("#error", "role") == "alert"


def test_every_control_has_a_label(page):
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, button, select, textarea')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
        .map(el => el.id || el.outerHTML)""")
    assert unlabelled == []
    assert np.all([page.locator(s).count() == 1 for s in ("#file-input", "#k-input", "#radius-input", "#search-button")])


def test_the_api_docs_render_with_no_internet(browser, server):
    context = browser.new_context()
    pg = context.new_page()
    outside = []

    def only_this_server(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    pg.route("**/*", only_this_server)
    pg.goto(server + "/docs")
    pg.wait_for_selector(".swagger-ui .info .title", timeout=15000)
    assert "dnnh retrieval service" in pg.locator(".swagger-ui .info .title").inner_text()
    pg.wait_for_selector(".opblock-summary-path[data-path='/api/search']")
    assert outside == []  # nothing was asked of another host
    context.close()


def test_the_button_says_search_until_there_is_something_to_search_again(page, query_file):
    """Issue 36.17. Before: the only button read "Search again" before any search."""
    button = page.locator("#search-button")
    assert button.inner_text() == "Search"
    page.get_by_label("Choose an image").set_input_files(str(query_file))
    wait_for_results(page, K)
    assert button.inner_text() == "Search again"


def test_a_click_on_a_result_empties_the_file_chooser(page, query_file):
    """Issue 36.17. Before: after a click on a result the file chooser still named the uploaded file,
    though the query was now the item (and choosing that file again did nothing: no change event)."""
    chooser = page.get_by_label("Choose an image")
    chooser.set_input_files(str(query_file))
    wait_for_results(page, K)
    assert chooser.evaluate("el => el.files.length") == 1
    first = page.locator("#results button.result").first
    target = first.get_attribute("data-id")
    first.click()
    page.wait_for_selector(f"#query-view[data-item-id='{target}']")
    assert chooser.evaluate("el => [el.value, el.files.length]") == ["", 0]
    chooser.set_input_files(str(query_file))  # the same file again is a new search
    page.wait_for_function("() => !document.querySelector('#query-view').dataset.itemId")
    assert "query-digit.png" in page.locator("#query-caption").inner_text()


def test_the_header_says_whether_writes_are_on(browser, page, tiny_run, tmp_path):
    """Issue 36.17. Before: the header said "read-only" without a token and nothing with one."""
    from dnnh.serve import create_app

    assert "read-only" in page.locator("#service-info").inner_text()
    with serving(create_app(tiny_run, store=tmp_path / "s", token="browser-test-token-0123")) as url:
        context = browser.new_context()
        pg = context.new_page()
        pg.goto(url + "/")
        pg.wait_for_selector("body[data-ready='true']")
        info = pg.locator("#service-info").inner_text()
        context.close()
    assert "writes on (with the token)" in info and "read-only" not in info
