"""The web page of `rnngen serve` in a real browser: headless Chromium types a prompt, streams a completion, and reads
the shaded tokens, their probabilities and the tooltip of alternatives back from the page.

Needs Debian's `chromium` and `chromium-driver` (CI installs them); without them the tests are skipped.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("selenium")
import test_serve  # noqa: E402
from browser import CHROMEDRIVER, CHROMIUM, MISSING  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from test_serve import running, slow_steps  # noqa: E402

import rnngen  # noqa: E402
from rnngen.server.app import ServedModel  # noqa: E402

run_dir = test_serve.run_dir  # the fixture training the tiny run, found by pytest here too
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=MISSING)

PROMPT, SEED, MAX_TOKENS = "the model", 7, 40


def open_page(browser, base: str) -> None:
    """Load the page and wait until it has listed the served models."""
    browser.get(base + "/")
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "status").text.startswith("serving "))


def fill(browser, field: str, value: object) -> None:
    element = browser.find_element(By.ID, field)
    element.clear()
    element.send_keys(str(value))


def complete(browser, **fields: object) -> str:
    """Fill the fields, click Complete and wait for the stream to end: the status line it ends with."""
    for field, value in fields.items():
        fill(browser, field, value)
    browser.find_element(By.ID, "go").click()
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 15).until(
        lambda d: "finished" in status.text or status.find_elements(By.CLASS_NAME, "error")
    )
    return status.text


def tokens(browser) -> list[dict]:
    """Each token span's text, inline shading, probability and alternatives, as the page holds them."""
    script = """return [...document.querySelectorAll('#output .tok')].map((s) => ({
        text: s.textContent, background: s.style.backgroundColor, prob: Number(s.dataset.prob),
        alternatives: s.dataset.alternatives}));"""
    shown = browser.execute_script(script)
    for token in shown:  # parsed here: the driver would hand back an object's keys sorted, not in the page's order
        token["alternatives"] = json.loads(token["alternatives"])
    return shown


def red_minus_green(rgb: str) -> int:
    red, green, _ = (int(part) for part in rgb.removeprefix("rgb(").removesuffix(")").split(","))
    return red - green


def test_the_page_streams_the_completion_shaded_by_probability_with_alternatives_on_hover(run_dir, browser, tmp_path):
    with running(run_dir) as (base, _):
        open_page(browser, base)
        assert not browser.find_element(By.ID, "model").is_displayed()  # one model: nothing to pick
        options = {"temperature": 0.8, "top_k": 0, "top_p": 1, "repetition_penalty": 1, "alternatives": 5}
        status = complete(browser, prompt=PROMPT, seed=SEED, max_tokens=MAX_TOKENS, **options)
        shown = tokens(browser)
        assert status == f"{len(shown)} tokens, finished: length"
        assert browser.find_element(By.CSS_SELECTOR, "#output .prompt").get_attribute("textContent") == PROMPT

        model = rnngen.load("notes-run", checkpoints_dir=run_dir / "checkpoints")
        expected = model.complete(PROMPT, max_tokens=MAX_TOKENS, seed=SEED, temperature=0.8, top_k=0, top_p=1.0)
        assert "".join(token["text"] for token in shown) == expected

        assert all(0 < token["prob"] <= 1 and token["background"].startswith("rgb(") for token in shown)
        assert all(0 < len(token["alternatives"]) <= 5 for token in shown)
        # A drawn token among the alternatives carries the same probability in both.
        listed = [token for token in shown if token["text"] in token["alternatives"]]
        assert listed and all(
            abs(2.718281828 ** token["alternatives"][token["text"]] - token["prob"]) < 1e-4 for token in listed
        )
        # Likely tokens are shaded greener, unlikely ones redder.
        likely, unlikely = max(shown, key=lambda t: t["prob"]), min(shown, key=lambda t: t["prob"])
        assert likely["prob"] > unlikely["prob"]
        assert red_minus_green(likely["background"]) < red_minus_green(unlikely["background"])

        spans = browser.find_elements(By.CSS_SELECTOR, "#output .tok")
        tip = browser.find_element(By.ID, "tip")
        ActionChains(browser).move_to_element(spans[3]).perform()
        WebDriverWait(browser, 5).until(lambda d: tip.is_displayed())
        assert tip.text.splitlines()[0] == f"p = {shown[3]['prob']:.4f}"
        rows = tip.find_elements(By.TAG_NAME, "tr")
        assert [row.find_element(By.TAG_NAME, "td").text for row in rows] == [
            json.dumps(text, ensure_ascii=False) for text in shown[3]["alternatives"]
        ]
        ActionChains(browser).move_to_element(browser.find_element(By.ID, "prompt")).perform()
        WebDriverWait(browser, 5).until(lambda d: not tip.is_displayed())

        assert browser.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_with_several_models_the_picker_lists_them_and_the_page_completes_with_the_one_picked(
    run_dir, browser, monkeypatch
):
    load_one = test_serve.load_models

    def two_models(*args):
        (model,) = load_one(*args)
        return [model, ServedModel("notes-copy", model.completer, model.created)]

    monkeypatch.setattr(test_serve, "load_models", two_models)
    with running(run_dir) as (base, app):
        open_page(browser, base)
        picker = browser.find_element(By.ID, "model")
        assert picker.is_displayed()
        assert [option.text for option in picker.find_elements(By.TAG_NAME, "option")] == ["notes-run", "notes-copy"]
        picker.find_element(By.CSS_SELECTOR, "option[value='notes-copy']").click()
        assert complete(browser, prompt="a", seed=1, max_tokens=5) == "5 tokens, finished: length"
        assert app.state.schedulers["notes-copy"].tokens > 0 and app.state.schedulers["notes-run"].tokens == 0


def test_ctrl_enter_during_a_completion_starts_no_second_one_and_stop_ends_it(run_dir, browser, monkeypatch):
    with running(run_dir) as (base, app):
        slow_steps(app, monkeypatch, 0.01)
        open_page(browser, base)
        fill(browser, "max_tokens", 1000)
        browser.find_element(By.ID, "go").click()
        WebDriverWait(browser, 5).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#output .tok"))
        browser.find_element(By.ID, "prompt").send_keys(Keys.CONTROL, Keys.ENTER)
        WebDriverWait(browser, 5).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#output .tok")) > 20)
        browser.find_element(By.ID, "stop").click()
        status = browser.find_element(By.ID, "status")
        WebDriverWait(browser, 5).until(lambda d: status.text.startswith("stopped"))
        assert status.text == f"stopped after {len(tokens(browser))} tokens"
        assert browser.find_element(By.ID, "go").is_enabled() and not browser.find_element(By.ID, "stop").is_enabled()
        scheduler = app.state.schedulers["notes-run"]
        WebDriverWait(browser, 5).until(lambda d: scheduler.rows == 0)  # the server stopped decoding it too


def test_in_chat_mode_each_turn_continues_the_conversation_and_shows_its_cached_tokens(run_dir, browser):
    model = rnngen.load("notes-run", checkpoints_dir=run_dir / "checkpoints")
    with running(run_dir) as (base, app):
        open_page(browser, base)
        browser.find_element(By.ID, "chat").click()
        options = {"seed": 3, "max_tokens": 20, "alternatives": 0}
        assert complete(browser, prompt="the model reads", **options) == "20 tokens, finished: length"
        first = "".join(token["text"] for token in tokens(browser))
        assert first == model.complete("the model reads", max_tokens=20, seed=3)
        assert browser.find_element(By.ID, "prompt").get_attribute("value") == ""  # ready for the next turn
        test_serve.wait_for_cache(app)
        assert complete(browser, prompt=" and the", **options) == "20 tokens, finished: length"
        second = "".join(token["text"] for token in tokens(browser)[20:])
        conversation = "the model reads" + first + " and the"
        assert second == model.complete(conversation, max_tokens=20, seed=3)
        # The turns and replies stay on the page; the usage says how much the server did not read again.
        typed = [span.text for span in browser.find_elements(By.CSS_SELECTOR, "#output .prompt")]
        assert [text.strip() for text in typed] == ["the model reads", "and the"]
        usage = browser.find_element(By.ID, "usage")
        cached = int(usage.get_attribute("data-cached"))
        assert cached >= len("the model reads" + first) - 25 and f"prompt: {len(conversation)} tokens" in usage.text
        browser.find_element(By.ID, "reset").click()
        assert tokens(browser) == [] and complete(browser, prompt="a", **options) == "20 tokens, finished: length"
        assert "".join(token["text"] for token in tokens(browser)) == model.complete("a", max_tokens=20, seed=3)
