"""`rnngen export --format web` in a real browser: headless Chromium opens the exported folder from a static server
on the loopback, completes a prompt at temperature 0 and writes what `rnngen complete --temperature 0` writes.

Needs Debian's `chromium` and `chromium-driver`, and npm for ONNX Runtime Web and sentencepiece (installed once into
rnngen's cache by the first web export); without them the tests are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("selenium")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from test_export import greedy_with_onnxruntime, save_run  # noqa: E402

from rnngen.data.tokenizer import Tokenizer, train  # noqa: E402
from rnngen.errors import RnngenError  # noqa: E402
from rnngen.export import web  # noqa: E402
from rnngen.export.folder import export  # noqa: E402

MAX_TOKENS = 40


@pytest.fixture(scope="module")
def packages() -> Path:
    """The npm packages a web export copies, installed into rnngen's cache where missing."""
    try:
        return web.npm_packages()
    except RnngenError as exc:
        pytest.skip(f"no npm packages for the page: {exc}")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """Any static host: Python's file server on a free loopback port, serving `folder`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def status(browser) -> str:
    return browser.find_element(By.ID, "status").text


def complete(browser, **fields: object) -> str:
    """Fill the fields, click Complete and wait for the completion to end: the status line it ends with."""
    for field, value in fields.items():
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(str(value))
    browser.find_element(By.ID, "go").click()
    WebDriverWait(browser, 20).until(lambda d: "finished" in status(d) or d.find_elements(By.CLASS_NAME, "error"))
    return status(browser)


def written(browser) -> str:
    return browser.execute_script(
        "return [...document.querySelectorAll('#output .tok')].map((s) => s.textContent).join('')"
    )


def encoded(browser, text: str) -> list[int]:
    """The ids the page's sentencepiece gives `text`, as the page encodes a prompt."""
    script = "const done = arguments[1]; import('./complete.js').then((page) => done(page.encode(arguments[0])));"
    return browser.execute_async_script(script, text)


def rnngen_complete(run_cli, run: str, prompt: str) -> str:
    result = run_cli(
        "complete", prompt, "--checkpoint", run, "--temperature", "0", "--max-tokens", str(MAX_TOKENS), "--json"
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["completion"]


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, Tokenizer]:
    from conftest import sample_text

    text = sample_text(20_000)
    return {"unigram": Tokenizer(train([text], "unigram", 400)), "word": Tokenizer(train([text], "word", 120))}


# (kind, impl, weights, tokenizer, documents): the LSTM, minLSTM's loop in int8, the lecture's GRU (reset before the
# product) on the word model (no byte pieces: encoded line by line) and a corpus of one text (prompts after a newline).
PAGES = [
    ("lstm", "fused", None, "unigram", 1),
    ("minlstm", "fused", "int8", "unigram", 1),
    ("gru", "scratch", None, "word", 0),
]


@pytest.mark.parametrize("kind,impl,quantize,tokenizer,documents", PAGES, ids=["lstm", "minlstm-int8", "gru-word"])
def test_the_page_completes_in_the_browser_as_rnngen_complete_does(
    kind, impl, quantize, tokenizer, documents, tokenizers, packages, browser, tmp_path, run_cli
):
    tok = tokenizers[tokenizer]
    save_run(tmp_path / "checkpoints", tok, kind, impl, name="notes", documents=documents)
    exported = export("notes", tmp_path / "site", "web", quantize, checkpoints=tmp_path / "checkpoints")
    assert {"index.html", "complete.js", "model.onnx", "model.json", "tokenizer.model"} <= set(exported.sizes)
    assert {"vendor/ort.wasm.min.mjs", "vendor/ort-wasm-simd-threaded.wasm", "vendor/sentencepiece.js"} <= set(
        exported.sizes
    )
    # Characters of byte pieces, sentencepiece's own space mark (escaped by rnngen) and a second line.
    prompt = "the model reads ▁ é\nthe" if tokenizer == "unigram" else "the model reads\nthe"
    with static_server(tmp_path / "site") as base:
        browser.get(base + "/")
        WebDriverWait(browser, 20).until(lambda d: status(d) == "ready" or d.find_elements(By.CLASS_NAME, "error"))
        assert status(browser) == "ready"
        assert browser.find_element(By.ID, "about").text.startswith(f"notes: a 2x24 {kind}")
        assert encoded(browser, prompt) == tok.encode(prompt)
        line = complete(browser, prompt=prompt, temperature=0, top_p=1, max_tokens=MAX_TOKENS)
        if quantize:  # other logits than rnngen's model, by design: the same as ONNX Runtime's in Python
            start = json.loads((tmp_path / "site" / "model.json").read_text())["start"]
            expected = tok.decode(greedy_with_onnxruntime(tmp_path / "site", start + tok.encode(prompt), MAX_TOKENS)[1])
        else:
            expected = rnngen_complete(run_cli, "notes", prompt)
        assert written(browser) == expected
        assert browser.find_element(By.CSS_SELECTOR, "#output .prompt").get_attribute("textContent") == prompt
        tokens = len(browser.find_elements(By.CSS_SELECTOR, "#output .tok"))
        assert line.startswith(f"{min(tokens, MAX_TOKENS)} tokens, ") and "tokens/s, finished: " in line
        # Sampling with a seed draws the same text again; another seed, another text.
        sampled = [(complete(browser, temperature=1.5, top_p=0.95, seed=seed), written(browser)) for seed in (3, 3, 4)]
        assert sampled[0][1] == sampled[1][1] != sampled[2][1]
        # Everything the page loaded came from the folder's own host: nothing from elsewhere, nothing sent.
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
        assert loaded and all(url.startswith(base + "/") for url in loaded)


def test_without_npm_a_web_export_names_what_to_install(tokenizers, tmp_path, monkeypatch):
    save_run(tmp_path / "checkpoints", tokenizers["unigram"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing installed yet
    monkeypatch.setattr(web.shutil, "which", lambda name: None)
    with pytest.raises(RnngenError) as missing:
        export("run", tmp_path / "site", "web", checkpoints=tmp_path / "checkpoints")
    message = str(missing.value)
    assert "\n" not in message and message.startswith(
        "a web export needs onnxruntime-web@1.31.1 and @sctg/sentencepiece-js@1.3.3 from npm, installed once into "
    )
    assert message.endswith("install Node.js with its npm (e.g. apt-get install npm) and export again")
    assert not (tmp_path / "site").exists()


def test_an_npm_that_fails_names_the_registry_and_leaves_no_half_install(tokenizers, tmp_path, monkeypatch):
    save_run(tmp_path / "checkpoints", tokenizers["unigram"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    npm = tmp_path / "npm"
    npm.write_text("#!/bin/sh\necho 'npm error code ENOTFOUND' >&2\nexit 1\n")  # what npm says offline
    npm.chmod(0o755)
    monkeypatch.setattr(web.shutil, "which", lambda name: str(npm))
    with pytest.raises(RnngenError) as failed:
        export("run", tmp_path / "site", "web", checkpoints=tmp_path / "checkpoints")
    message = str(failed.value)
    assert "\n" not in message and "(npm error code ENOTFOUND): check that the npm registry can be reached" in message
    assert list((tmp_path / "cache" / "rnngen").iterdir()) == [] and not (tmp_path / "site").exists()
