"""Issue 20: what the web server lets through (``ui.guard``): only the routes the page and the named
endpoints need, only the endpoints the README names for clients, writes with the token and from this
origin only, uploads of accepted types within per-request and per-hour limits, no file served back, the
upload cache cleaned, and ``rag serve`` refusing to listen beyond loopback without a token."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

import rag
from tests.conftest import REPO, fake_indexed_copy
from tests.ui_helpers import free_port, python_env
from ui import app as ui_app
from ui import guard
from ui import server as ui_server

TOKEN = "correct-horse-battery-staple-20"
QUESTION = "why do French trust pure-players?"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> rag.Settings:
    return fake_indexed_copy(tmp_path_factory.mktemp("guard"))


@contextmanager
def server(settings: rag.Settings, **options):
    app, url = ui_server.start(settings, host="127.0.0.1", port=free_port(), **options)
    try:
        yield app, url.rstrip("/")
    finally:
        app.close()


@pytest.fixture(scope="module")
def guarded(corpus):
    limits = guard.UploadLimits(extensions=corpus.extensions, max_file_bytes=2_000, max_files_per_hour=4)
    with server(corpus, write_token=TOKEN, upload_limits=limits) as running:
        yield running


@pytest.fixture(scope="module")
def open_loopback(corpus):
    with server(corpus) as running:
        yield running


def readme_endpoints() -> set[str]:
    """The endpoint names README.md lists for clients (its "Serving" section)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Serving", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^- `/(\w+)`", section, flags=re.M))


def routes(app) -> list[tuple[str, str]]:
    """Every (method, path template) the Gradio app behind the guard has, routers included."""

    def walk(items):
        for item in items:
            if hasattr(item, "path"):
                for method in sorted(getattr(item, "methods", None) or {"GET"}):
                    yield method, item.path
            else:  # an included router: its routes carry their prefix already
                yield from walk(item.original_router.routes)

    return sorted(set(walk(app.server_app.routes)))


# what the page and the named endpoints need; every other route must answer 404
NEEDED = {
    ("GET", "/"), ("HEAD", "/"), ("GET", "/config"), ("GET", "/config/"), ("GET", "/theme.css"),
    ("GET", "/favicon.ico"), ("GET", "/assets/{path:path}"), ("GET", "/static/{path:path}"),
    ("GET", "/gradio_api/info"), ("GET", "/gradio_api/info/"), ("GET", "/gradio_api/queue/data"),
    ("GET", "/gradio_api/heartbeat/{session_hash}"), ("GET", "/gradio_api/startup-events"),
    ("GET", "/gradio_api/upload_progress"), ("POST", "/gradio_api/upload"), ("POST", "/gradio_api/queue/join"),
    ("POST", "/gradio_api/run/{api_name}"), ("POST", "/gradio_api/run/{api_name}/"),
    ("POST", "/gradio_api/call/{api_name}"), ("POST", "/gradio_api/call/{api_name}/"),
    ("GET", "/gradio_api/call/{api_name}/{event_id}"),
}


def test_every_route_the_page_does_not_need_answers_404(guarded):
    app, url = guarded
    found = routes(app)
    assert len(found) > 60 and set(NEEDED) <= set(found)  # Gradio really has all these
    reached = []
    for method, template in found:
        if (method, template) in NEEDED:
            continue
        # a named endpoint's name in every slot: even /chat must not pass through another route
        path = re.sub(r"\{api_name\}", "chat", template)
        path = re.sub(r"\{[^}]+\}", "x", path)
        response = httpx.request(method, url + path, headers={"Authorization": f"Bearer {TOKEN}"}, json={}, timeout=30)
        if response.status_code != 404:
            reached.append((method, template, response.status_code))
    assert reached == []
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        assert httpx.request(method, url + "/gradio_api/upload", timeout=30).status_code == 404


def test_unknown_endpoints_and_event_numbers_are_404_not_500(guarded):
    _, url = guarded
    for path in ("/gradio_api/run/nope", "/gradio_api/call/nope", "/gradio_api/api/chat", "/nope"):
        assert httpx.post(url + path, json={"data": []}, timeout=30).status_code == 404, path
    for fn_index in (99, -1, "0", None, True, 1.5):
        body = {"data": [], "fn_index": fn_index, "session_hash": "s"}
        assert httpx.post(url + "/gradio_api/queue/join", json=body, timeout=30).status_code == 404
    response = httpx.post(url + "/gradio_api/queue/join", content=b"{not json", timeout=30)
    assert response.status_code == 404 and "Traceback" not in response.text


def test_clients_reach_exactly_the_endpoints_the_readme_names(guarded, corpus):
    app, url = guarded
    config = httpx.get(url + "/config", timeout=30).json()
    events = {dep["id"]: dep.get("api_name") for dep in config["dependencies"]}
    assert len(events) >= 7
    reachable, reachable_from_page = set(), set()
    with httpx.Client(timeout=30) as browser:
        browser.get(url + "/")  # the page sets its cookie
        assert guard.PAGE_COOKIE in browser.cookies
        for fn_index, name in events.items():
            body = {"data": [], "fn_index": fn_index, "session_hash": f"enumerate-{fn_index}"}
            headers = {"Authorization": f"Bearer {TOKEN}"}
            if httpx.post(url + "/gradio_api/queue/join", json=body, headers=headers, timeout=30).status_code == 200:
                reachable.add(name)
            if browser.post(url + "/gradio_api/queue/join", json=body, headers=headers).status_code == 200:
                reachable_from_page.add(name)
            by_name = httpx.post(url + f"/gradio_api/run/{name}", json={"data": []}, headers=headers, timeout=30)
            if name not in readme_endpoints():
                assert by_name.status_code == 404, name
    assert reachable == readme_endpoints() == {"chat", "add_document", "add_url", "rebuild_index"}
    page_events = {n for i, n in events.items() if app.fns[i].fn is not None}
    assert reachable_from_page == page_events and len(page_events - reachable) >= 4
    # a forged page cookie is no cookie
    forged = {guard.PAGE_COOKIE: "abc.0123456789abcdef0123456789abcdef"}
    private = next(i for i, n in events.items() if n == "answer_pending")
    body = {"data": [], "fn_index": private, "session_hash": "forged"}
    assert httpx.post(url + "/gradio_api/queue/join", json=body, cookies=forged, timeout=30).status_code == 404


def test_writes_need_the_token_reads_do_not(guarded, tmp_path):
    _, url = guarded
    assert "pure-players" in Client(url, verbose=False).predict(QUESTION, api_name="/chat")
    note = tmp_path / "note.txt"
    note.write_text("Une note sur le marché couvert de la ville et ses fromagers.", encoding="utf-8")
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"X-Rag-Token": TOKEN[:-1]}):
        with pytest.raises(Exception, match="403"):
            Client(url, verbose=False, headers=headers).predict(False, api_name="/rebuild_index")
        response = httpx.post(url + "/gradio_api/upload", files={"files": ("note.txt", b"x")}, headers=headers)
        assert response.status_code == 403 and "write token" in response.text
    for headers in ({"Authorization": f"Bearer {TOKEN}"}, {"X-Rag-Token": TOKEN}):
        notice, _ = Client(url, verbose=False, headers=headers).predict(False, api_name="/rebuild_index")
        assert "rag-notice-success" in notice
    cookie = {guard.TOKEN_COOKIE: TOKEN.replace("-", "%2D")}  # as the page's token box writes it
    response = httpx.post(url + "/gradio_api/upload", files={"files": ("note.txt", b"du texte")}, cookies=cookie)
    assert response.status_code == 200


def test_cross_origin_writes_are_refused(open_loopback):
    _, url = open_loopback
    files = {"files": ("note.txt", b"du texte")}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        assert httpx.post(url + "/gradio_api/upload", files=files, headers=headers).status_code == 403
        body = {"data": [False], "fn_index": 0, "session_hash": "s"}
        assert httpx.post(url + "/gradio_api/queue/join", json=body, headers=headers).status_code == 403
    same = {"Origin": url, "Sec-Fetch-Site": "same-origin"}
    assert httpx.post(url + "/gradio_api/upload", files=files, headers=same).status_code == 200


def test_uploads_only_of_accepted_types_sizes_and_numbers(guarded, corpus):
    _, url = guarded
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def upload(files=None, data=None):
        return httpx.post(url + "/gradio_api/upload", files=files, data=data, headers=auth, timeout=30)

    accepted = f"only {', '.join(corpus.extensions)} documents"  # what rag reads, nothing else
    for name in ("setup.exe", "report.odt", "page.php", "noextension", "archive.txt.zip"):
        response = upload({"files": (name, b"du texte")})
        assert response.status_code == 415 and accepted in response.text, name
    assert upload([("files", ("a.txt", b"a")), ("files", ("b.txt", b"b"))]).status_code == 413
    assert upload({"files": ("big.txt", b"x" * 2_001)}).status_code == 413
    assert upload(data={"field": "no file"}).status_code == 400
    # four uploads an hour for this server (quota counted per client)
    statuses = [upload({"files": (f"n{i}.md", b"# Note\n\ndu texte")}).status_code for i in range(6)]
    assert statuses[-1] == 429 and statuses.count(200) <= 4


def test_hourly_quota_slides():
    quota = guard.HourlyQuota(guard.UploadLimits(max_files_per_hour=2, max_bytes_per_hour=100))
    assert quota.refuse("a", 1, 10, now=0) == "" and quota.refuse("a", 1, 10, now=1) == ""
    assert "2 uploads an hour" in quota.refuse("a", 1, 10, now=2)
    assert quota.refuse("b", 1, 10, now=2) == ""  # per client
    assert quota.refuse("a", 1, 10, now=3601) == ""  # the first one left the window
    assert "100 bytes" in quota.refuse("c", 1, 101, now=0)


def test_nothing_uploaded_is_served_back_and_the_cache_is_cleaned(corpus, monkeypatch):
    monkeypatch.setattr(ui_app, "DELETE_CACHE", (1, 1))
    with server(corpus) as (_, url):
        response = httpx.post(url + "/gradio_api/upload", files={"files": ("kept.txt", b"du texte")}, timeout=30)
        (cached,) = response.json()
        assert Path(cached).is_file()
        for path in (f"/gradio_api/file={cached}", f"/file={cached}", f"/gradio_api/file/{cached}"):
            assert httpx.get(url + path, timeout=30).status_code == 404
        deadline = time.monotonic() + 30
        while Path(cached).exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not Path(cached).exists()


def test_an_added_upload_leaves_no_copy_in_the_cache(corpus, tmp_path):
    with server(corpus) as (_, url):
        note = tmp_path / "marche.md"
        note.write_text("# Le marché\n\nLe marché couvert ouvre le samedi matin, avec ses fromagers.", "utf-8")
        notice, _, _ = Client(url, verbose=False).predict(handle_file(str(note)), False, api_name="/add_document")
        assert "Added marche.md" in notice
        assert (corpus.seeds_dir / "marche.md").is_file()
        assert list(Path(ui_app.gr.utils.get_upload_folder()).rglob("marche.md")) == []


def test_remote_messages_hold_no_path_of_the_server(tmp_path):
    missing = rag.Settings(seeds_dir=tmp_path / "no-seeds", index_dir=tmp_path / "no-index", model="fake-sha256-64")
    with server(missing) as (_, url):
        with pytest.raises(Exception) as caught:
            Client(url, verbose=False).predict(QUESTION, api_name="/chat")
        assert "no index in no-index and no seeds folder no-seeds" in str(caught.value)
        assert str(tmp_path) not in str(caught.value)
        page = httpx.get(url + "/config", timeout=30).text
        assert str(tmp_path) not in page


def test_public_message_keeps_names_and_drops_paths():
    folders = [Path("/srv/rag/seeds"), Path("/srv/rag/index")]
    text = "cannot read /srv/rag/index/v-1/manifest.json; no seeds folder /srv/rag/seeds; see /usr/lib/x.so"
    assert rag.public_message(text, folders) == "cannot read index/v-1/manifest.json; no seeds folder seeds; see …/x.so"
    kept = "fetch http://example.com/a/b failed, and/or 1/2 of them"
    assert rag.public_message(kept) == kept


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org"])
def test_listening_beyond_loopback_needs_a_token_or_read_only(host):
    assert "--token or RAG_SERVE_TOKEN" in guard.exposure_problem(host, None, read_only=False)
    assert guard.exposure_problem(host, TOKEN, read_only=False) == ""
    assert guard.exposure_problem(host, None, read_only=True) == ""
    assert "at least 16" in guard.exposure_problem(host, "short", read_only=False)
    for loopback in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert guard.exposure_problem(loopback, None, read_only=False) == ""


def test_rag_serve_refuses_to_start_on_all_interfaces_without_a_token(tmp_path):
    env = python_env()
    env.pop("RAG_SERVE_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli", "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--seeds", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("rag: error: --host 0.0.0.0 listens beyond this machine")
    assert "--read-only" in result.stderr


@pytest.mark.browser
def test_the_page_works_behind_the_guard_and_its_token_box_unlocks_uploads(corpus, tmp_path):
    """In Chromium: the page's own events pass (its cookie), an upload without the token is refused with
    the reason, and the same upload passes once the token is typed in the page's box."""
    from playwright.sync_api import sync_playwright

    from tests.ui_helpers import CHROMIUM, CHROMIUM_ARGS

    note = tmp_path / "cidre.md"
    note.write_text("# Le cidre\n\nLe cidre de Normandie se fait avec des pommes à cidre.", encoding="utf-8")
    with server(corpus, write_token=TOKEN) as (_, url), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("#rag-status .rag-status-counts", timeout=30_000)
            box = page.locator("#rag-question textarea")
            box.fill(QUESTION)
            box.press("Enter")
            page.locator("#rag-chat .rag-answer").first.wait_for(timeout=60_000)
            page.locator("#rag-upload input[type=file]").set_input_files(str(note))
            page.get_by_text("uploading documents needs the write token").first.wait_for(timeout=30_000)
            assert not (corpus.seeds_dir / "cidre.md").exists()
            page.locator("#rag-token input").fill(TOKEN)
            page.locator("#rag-token input").press("Tab")
            page.locator("#rag-upload input[type=file]").set_input_files(str(note))
            page.wait_for_selector("#rag-notice .rag-notice-success", timeout=90_000)
            assert "Added cidre.md" in page.locator("#rag-notice").inner_text()
            assert TOKEN not in page.content()
        finally:
            browser.close()


def test_a_new_endpoint_or_a_page_event_that_writes_needs_the_token():
    """Fail closed: a named endpoint not known to read is a write; a page event in the app's write group
    is a write too."""
    import gradio as gr

    with gr.Blocks() as blocks:
        box = gr.Textbox()
        box.submit(lambda x: x, box, box, api_name="chat")
        box.change(lambda x: x, box, box, api_name="add_url")  # say, a later way to add documents
        box.blur(lambda x: x, box, box, api_visibility="private", concurrency_id=ui_app.INDEX_WRITES)
        box.focus(lambda x: x, box, box, api_visibility="private")
    policy = guard.policy_for(blocks, False, TOKEN, guard.UploadLimits(), write_group=ui_app.INDEX_WRITES)
    assert list(policy.events.values()) == ["read", "write", "page-write", "page"]
    assert policy.names == {"chat": 0, "add_url": 1}
    assert TOKEN not in repr(policy)
