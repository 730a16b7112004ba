"""The chat page at "/": its HTTP answers (types, caching, CSP, --no-webui, API key), and the
page itself driven in headless Chromium: a streamed answer equal to the API's, the stop
button aborting the request (seen in /metrics), the conversation kept across a reload,
untrusted model text shown as text, the API-key prompt on 401, and screenshots.

The browser tests need Debian's chromium and chromium-driver and Selenium (PyPI); they are
skipped, with the reason, when Chromium cannot start. Set TESSERA_WEBUI_SCREENSHOTS=DIR to
write the screenshots there (docs/images holds the README's)."""
import json
import os
import pathlib
import re
import shutil
import time

import pytest

from serverlib import Server, request, smollm2_server

CSP_EXTERNAL = re.compile(r"https?:|\*|'unsafe-inline'|'unsafe-eval'")


@pytest.fixture(scope="module")
def smol(smollm2, tmp_path_factory):
    s = smollm2_server(smollm2, tmp_path_factory.mktemp("srv") / "webui.log")
    yield s
    assert s.stop() == 0, s.logs()


# ---- HTTP ----

def test_page_and_assets_headers(smol):
    r = request(smol.port, "GET", "/")
    assert r.status_code == 200
    page = r.text
    assert page.startswith("<!doctype html>")
    # Everything the page loads comes from this server, and no script is inline.
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and all(u.startswith("/webui/") for u in refs), refs
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline script"
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", page), "inline event handler"
    types = {"/webui/app.js": "text/javascript; charset=utf-8",
             "/webui/markdown.js": "text/javascript; charset=utf-8",
             "/webui/app.css": "text/css; charset=utf-8",
             "/webui/favicon.svg": "image/svg+xml",
             "/": "text/html; charset=utf-8"}
    for path, ctype in types.items():
        h = raw_headers(smol.port, path)
        assert h["status"] == 200, path
        assert h["content-type"] == ctype, (path, h)
        assert h["x-content-type-options"] == "nosniff"
        assert h["cache-control"] == "no-cache"
        assert re.fullmatch(r'"[0-9a-f]{16}"', h["etag"]), h["etag"]
        csp = h["content-security-policy"]
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert not CSP_EXTERNAL.search(csp), csp
        # Revalidation: the same ETag gives 304 without a body; another gives the file.
        again = raw_headers(smol.port, path, {"If-None-Match": h["etag"]})
        assert again["status"] == 304 and again["body"] == b"", again
        assert again["etag"] == h["etag"]
        assert raw_headers(smol.port, path, {"If-None-Match": '"0000"'})["status"] == 200
        assert raw_headers(smol.port, path, {"If-None-Match": 'W/"x", ' + h["etag"]})[
            "status"] == 304
    missing = request(smol.port, "GET", "/webui/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def raw_headers(port, path, headers=None):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        out = {k.lower(): v for k, v in r.getheaders()}
        out["status"] = r.status
        out["body"] = r.read()
        return out
    finally:
        conn.close()


def test_no_webui_and_api_key(smollm2, tmp_path):
    s = Server(smollm2, "--no-webui", "--max-model-len", 512, "--kv-cache-memory", "32MiB", log_path=tmp_path / "a.log")
    try:
        assert s.get("/").status_code == 404
        assert s.get("/webui/app.js").status_code == 404
        assert "chat page" not in s.logs()
    finally:
        assert s.stop() == 0
    s = Server(smollm2, "--api-key", "sekrit", "--max-model-len", 512, "--kv-cache-memory", "32MiB",
               log_path=tmp_path / "b.log")
    try:
        # The page loads without the key (it asks for it); the API still needs it.
        assert s.get("/").status_code == 200
        assert s.get("/webui/app.js").status_code == 200
        assert s.get("/v1/models").status_code == 401
        assert s.get("/webui/nothing.js").status_code == 401
    finally:
        assert s.stop() == 0


# ---- the page in Chromium ----

DESKTOP, NARROW = (1280, 860), (390, 844)


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        pytest.skip(f"Selenium is not installed: {e}")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium / chromium-driver are not installed (apt-get install chromium "
                    "chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--no-first-run", "--disable-extensions", "--force-device-scale-factor=1",
              f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        d = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    except Exception as e:  # noqa: BLE001 - any failure to start means "cannot run here"
        pytest.skip(f"Chromium cannot run here: {str(e).splitlines()[0]}")
    d.set_page_load_timeout(30)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = os.environ.get("TESSERA_WEBUI_SCREENSHOTS")
    p = pathlib.Path(d) if d else tmp_path_factory.mktemp("shots")
    p.mkdir(parents=True, exist_ok=True)
    return p


def wait(d, cond, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    state = js(d, """return {status: document.getElementById('status').textContent,
        busy: !document.getElementById('stop').hidden,
        messages: localStorage.getItem('tessera.chat.v1')};""")
    raise AssertionError(f"timed out waiting for {what}; page: {state}; "
                         f"browser log: {d.get_log('browser')}")


def js(d, script, *args):
    return d.execute_script(script, *args)


def stored(d):
    return json.loads(js(d, "return localStorage.getItem('tessera.chat.v1') || 'null'") or "null")


def open_page(d, server, size=DESKTOP):
    d.set_window_size(*size)
    d.get(server.url + "/")
    wait(d, lambda: js(d, "return document.readyState") == "complete", what="page load")
    wait(d, lambda: js(d, "return !!window.TesseraMarkdown"), what="scripts")


def set_field(d, id_, value):
    js(d, "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
          "e.dispatchEvent(new Event('input'));", id_, str(value))


def send_message(d, text):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    box = d.find_element(By.ID, "input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def busy(d):
    return js(d, "return !document.getElementById('stop').hidden")


def last_assistant(d):
    return js(d, """const m = document.querySelectorAll('.msg.assistant');
        const a = m[m.length - 1]; if (!a) return null;
        return {text: a.querySelector('.content').textContent,
                stats: a.querySelector('.stats').textContent,
                code: Array.from(a.querySelectorAll('pre code')).map(c => c.textContent)};""")


def severe_logs(d):
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


def test_chat_streams_the_api_answer(browser, smol, shots):
    d = browser
    open_page(d, smol)
    js(d, "localStorage.clear(); sessionStorage.clear();")
    open_page(d, smol)
    d.save_screenshot(str(shots / "webui-empty-desktop.png"))
    params = {"temperature": 0, "top_p": 1, "max_tokens": 96, "seed": 7}
    for k, v in params.items():
        set_field(d, k, v)
    set_field(d, "system", "")
    prompt = "Write a short Python function that returns the square of a number."
    send_message(d, prompt)
    wait(d, lambda: busy(d), timeout=10, what="the answer to start")
    wait(d, lambda: not busy(d), what="the answer to end")
    a = last_assistant(d)
    conv = stored(d)
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
    got = conv["messages"][1]["content"]
    # The same request through the API, unstreamed.
    r = smol.post("/v1/chat/completions",
                  {"messages": [{"role": "user", "content": prompt}], **params})
    assert r.status_code == 200, r.text
    want = r.json()["choices"][0]["message"]["content"]
    assert got == want
    assert got.strip()
    # Rendered as Markdown: each fenced block's code is in a <pre><code>, as text.
    fences = re.findall(r"```[^\n]*\n(.*?)(?:\n```|$)", got, re.S)
    assert a["code"] == fences, (a["code"], fences)
    # Tokens and rate shown under the answer.
    n_tokens = r.json()["usage"]["completion_tokens"]
    assert re.search(rf"^{n_tokens} tokens · \d+\.\d tok/s", a["stats"]), a["stats"]
    d.save_screenshot(str(shots / "webui-chat-desktop.png"))
    d.set_window_size(*NARROW)
    time.sleep(0.3)
    d.save_screenshot(str(shots / "webui-chat-narrow.png"))
    # The conversation stays in the browser across a reload.
    open_page(d, smol, NARROW)
    assert last_assistant(d)["text"].strip()
    assert js(d, "return document.querySelectorAll('.msg').length") == 2
    assert js(d, "return document.getElementById('temperature').value") == "0"
    # Nothing on the page was refused by the CSP or failed.
    assert severe_logs(d) == []


def test_stop_aborts_the_request(browser, smol, shots):
    d = browser
    open_page(d, smol, NARROW)
    js(d, "document.getElementById('new-chat').click()")
    d.save_screenshot(str(shots / "webui-empty-narrow.png"))
    for k, v in {"temperature": 0.8, "top_p": 0.95, "max_tokens": 800, "seed": 3}.items():
        set_field(d, k, v)
    aborted = smol.metrics()["tessera_requests_aborted_by_client_total"]
    send_message(d, "Tell me a very long story about a dragon who learns to cook.")
    wait(d, lambda: busy(d) and len((last_assistant(d) or {}).get("text", "")) > 40,
         timeout=30, what="some streamed text")
    assert smol.metrics()["tessera_requests_running"] == 1
    js(d, "document.getElementById('stop').click()")
    wait(d, lambda: not busy(d), timeout=10, what="the stop")
    # The server saw the client go: the request was aborted, nothing runs, and far fewer
    # than max_tokens tokens were made.
    smol.wait_metric("tessera_requests_aborted_by_client_total", lambda v: v == aborted + 1)
    smol.wait_metric("tessera_requests_running", lambda v: v == 0)
    a = last_assistant(d)
    assert a["stats"].endswith("stopped"), a["stats"]
    conv = stored(d)
    assert conv["messages"][-1].get("stopped") is True
    # The kept part is what was shown.
    assert conv["messages"][-1]["content"].startswith(a["text"].strip()[:20])
    assert severe_logs(d) == []


def test_model_text_is_never_markup(browser, smol):
    d = browser
    evil = ("<img src=x onerror=\"document.title='pwned'\"> <script>document.title='pwned'"
            "</script>\n\n[click](javascript:document.title='pwned') **bold** `<b>x</b>`\n\n"
            "```html\n<script>alert(1)</script>\n```\n\n| a | b |\n|---|--:|\n| <i>1</i> | 2 |")
    conv = {"messages": [{"role": "user", "content": "<b>hi</b>"},
                         {"role": "assistant", "content": evil}], "settings": {}}
    open_page(d, smol)
    js(d, "localStorage.setItem('tessera.chat.v1', arguments[0])", json.dumps(conv))
    open_page(d, smol)
    r = js(d, """const c = document.getElementById('messages');
        return {imgs: c.querySelectorAll('img, script, i, b').length,
                links: Array.from(c.querySelectorAll('a')).map(a => a.getAttribute('href')),
                strong: Array.from(c.querySelectorAll('strong')).map(e => e.textContent),
                code: Array.from(c.querySelectorAll('code')).map(e => e.textContent),
                cells: Array.from(c.querySelectorAll('td')).map(e => e.textContent),
                right: c.querySelectorAll('td.align-right').length,
                user: c.querySelector('.msg.user .content').textContent,
                title: document.title};""")
    assert r["imgs"] == 0 and r["title"] == "Tessera", r
    assert r["links"] == [], r  # javascript: URLs stay text
    assert r["strong"] == ["bold"] and r["code"] == ["<b>x</b>", "<script>alert(1)</script>"], r
    assert r["cells"] == ["<i>1</i>", "2"] and r["right"] == 1, r
    assert r["user"] == "<b>hi</b>"
    text = js(d, "return document.querySelector('.msg.assistant .content').textContent")
    assert "<img src=x onerror=" in text and "<script>document.title" in text
    js(d, "localStorage.clear()")


def test_api_key_asked_on_401(browser, smollm2, tmp_path):
    from selenium.webdriver.common.by import By
    d = browser
    s = Server(smollm2, "--api-key", "sekrit", "--max-model-len", 512, "--kv-cache-memory", "32MiB",
               log_path=tmp_path / "key.log")
    try:
        open_page(d, s)
        js(d, "localStorage.clear(); sessionStorage.clear();")
        open_page(d, s)
        set_field(d, "max_tokens", 4)
        set_field(d, "temperature", 0)
        send_message(d, "Hi")
        wait(d, lambda: js(d, "return document.getElementById('key-dialog').open"),
             timeout=20, what="the API-key dialog")
        d.find_element(By.ID, "key-input").send_keys("sekrit")
        d.find_element(By.ID, "key-ok").click()
        wait(d, lambda: not busy(d) and (last_assistant(d) or {}).get("stats"), timeout=60,
             what="the answer")
        assert js(d, "return sessionStorage.getItem('tessera.apiKey')") == "sekrit"
        assert js(d, "return localStorage.getItem('tessera.apiKey')") is None
        assert re.match(r"[1-4] tokens? · ", last_assistant(d)["stats"]), last_assistant(d)
        # 401s are expected there (the first try); nothing else failed.
        assert all("401" in e["message"] for e in severe_logs(d)), severe_logs(d)
        js(d, "localStorage.clear(); sessionStorage.clear();")
    finally:
        assert s.stop() == 0


def test_markdown_blocks(browser, smol):
    d = browser
    open_page(d, smol)
    out = js(d, """const f = TesseraMarkdown.render(arguments[0]);
        const div = document.createElement("div"); div.appendChild(f); div.normalize();
        const walk = (n) => n.nodeType === 3 ? JSON.stringify(n.textContent) :
            n.nodeName.toLowerCase() + '(' + Array.from(n.childNodes).map(walk).join(',') + ')';
        return Array.from(div.childNodes).map(walk);""",
               "# Title\n\nline one\nline two\n\n- a\n- b *c*\n  - d\n\n1. x\n2. y\n\n"
               "> quoted\n\n---\n~~~\nraw **x**\n~~~\n[ok](https://example.com/a_b) and "
               "https://example.org/x. \\*not em\\* ~~gone~~\n```py\nunclosed")
    assert out == [
        'h3("Title")',
        'p("line one",br(),"line two")',
        'ul(li("a"),li("b ",em("c"),ul(li("d"))))',
        'ol(li("x"),li("y"))',
        'blockquote(p("quoted"))',
        'hr()',
        'div(div(span("text"),button("Copy")),pre(code("raw **x**")))',
        'p(a("ok")," and ",a("https://example.org/x"),". *not em* ",del("gone"))',
        'div(div(span("py"),button("Copy")),pre(code("unclosed")))',
    ], out
