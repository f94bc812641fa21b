"""`rnngen serve`: the official openai client, curl-like raw requests and bad input against a real server on loopback.

The server runs in this process on a free loopback port (uvicorn in a thread) over a tiny model trained here; one
test starts `rnngen serve` itself to check the command line and a graceful SIGTERM.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

import rnngen  # noqa: E402
from rnngen.server.app import create_app  # noqa: E402
from rnngen.server.serving import in_thread, load_models  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from conftest import sample_text

    root = tmp_path_factory.mktemp("serve")
    (root / "notes.txt").write_text(sample_text(30_000))
    rnngen.prepare(str(root / "notes.txt"), tokenizer="char", name="notes", corpora=root / "corpora")
    rnngen.train(
        "notes", "tiny", name="notes-run", steps=60, corpora=root / "corpora", checkpoints=root / "checkpoints"
    )
    return root


@contextlib.contextmanager
def running(run_dir: Path, **options) -> Iterator[tuple[str, object]]:
    """A server on a free loopback port over the test run: its base URL and the app."""
    app = create_app(load_models(["notes-run"], run_dir / "checkpoints", "cpu"), **options)
    with in_thread(app) as base:
        yield base, app


@pytest.fixture(scope="module")
def served(run_dir) -> Iterator[tuple[str, object]]:
    with running(run_dir, max_batch=16, max_queue=8) as where:
        yield where


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served[0] + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def model(run_dir):
    return rnngen.load("notes-run", checkpoints_dir=run_dir / "checkpoints")


def raw(base: str, method: str, path: str, body: bytes | str | None = None, headers: dict | None = None):
    """A request as curl sends it: the status, the headers and the parsed JSON body."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(data) if data else None


def stats(app) -> dict:
    scheduler = app.state.schedulers["notes-run"]
    return {"rows": scheduler.rows, "waiting": scheduler.waiting, "steps": scheduler.steps, "tokens": scheduler.tokens}


def test_the_openai_client_lists_and_completes(client, model):
    assert [m.id for m in client.models.list().data] == ["notes-run"]
    response = client.completions.create(model="notes-run", prompt="the model", max_tokens=20, seed=3)
    choice = response.choices[0]
    assert choice.text == model.complete("the model", max_tokens=20, seed=3)
    assert choice.finish_reason == "length" and response.usage.completion_tokens == 20
    assert response.usage.prompt_tokens == len("the model") and response.id.startswith("cmpl-")


def test_a_streamed_completion_is_the_same_text_in_pieces(client, model):
    chunks = list(client.completions.create(model="notes-run", prompt="a", max_tokens=30, seed=5, stream=True))
    assert "".join(chunk.choices[0].text for chunk in chunks) == model.complete("a", max_tokens=30, seed=5)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_a_seed_gives_the_text_rnngen_complete_writes(client, run_cli_in):
    response = client.completions.create(model="notes-run", prompt="the", max_tokens=25, seed=11, temperature=1.1)
    result = run_cli_in("complete", "the", "--max-tokens", "25", "--seed", "11", "--temperature", "1.1", "--plain")
    assert result.exit_code == 0 and result.output == response.choices[0].text + "\n"


@pytest.fixture
def run_cli_in(run_dir, monkeypatch):
    from click.testing import CliRunner

    from rnngen.cli.main import cli

    monkeypatch.setenv("RNNGEN_CHECKPOINTS", str(run_dir / "checkpoints"))
    return lambda *args: CliRunner().invoke(cli, ["--checkpoints-dir", str(run_dir / "checkpoints"), *args])


def test_n_choices_and_prompt_lists_are_seeded_choice_by_choice(client, model):
    response = client.completions.create(model="notes-run", prompt=["the", "a"], n=2, max_tokens=15, seed=20)
    texts = [choice.text for choice in sorted(response.choices, key=lambda choice: choice.index)]
    # Choice i of each prompt is seeded with seed + i, as `rnngen complete --num-samples` draws sample i.
    expected = [model.complete(prompt, max_tokens=15, seed=20 + i) for prompt in ("the", "a") for i in range(2)]
    assert texts == expected and texts[0] != texts[1]


def test_stop_ends_each_choice_before_its_stop_string(client, model):
    full = model.complete("the", max_tokens=60, seed=2)
    stop = full[12:14]
    response = client.completions.create(model="notes-run", prompt="the", max_tokens=60, seed=2, stop=[stop, "QQQ"])
    assert response.choices[0].text == full[: full.find(stop)] and response.choices[0].finish_reason == "stop"


def test_logprobs_give_each_token_and_its_alternatives(client, model):
    response = client.completions.create(model="notes-run", prompt="the", max_tokens=8, seed=4, logprobs=3)
    logprobs = response.choices[0].logprobs
    assert "".join(logprobs.tokens) == response.choices[0].text
    assert len(logprobs.token_logprobs) == 8 and all(lp <= 0 for lp in logprobs.token_logprobs)
    assert all(len(top) == 3 for top in logprobs.top_logprobs)
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(8)]
    # The token's own log-probability is the model's, as `rnngen complete --show-probs` shows it.
    top = logprobs.top_logprobs[0]
    assert logprobs.tokens[0] not in top or abs(top[logprobs.tokens[0]] - logprobs.token_logprobs[0]) < 1e-9


def test_chat_reads_the_messages_as_one_running_text(client, model):
    messages = [{"role": "system", "content": "Notes. "}, {"role": "user", "content": "the model"}]
    response = client.chat.completions.create(model="notes-run", messages=messages, max_tokens=20, seed=6)
    assert response.choices[0].message.content == model.complete("Notes. the model", max_tokens=20, seed=6)
    assert response.choices[0].message.role == "assistant" and response.object == "chat.completion"
    streamed = client.chat.completions.create(
        model="notes-run", messages=messages, max_tokens=20, seed=6, stream=True, logprobs=True, top_logprobs=2
    )
    chunks = list(streamed)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == response.choices[0].message.content
    assert all(
        len(entry.top_logprobs) == 2 for c in chunks if c.choices[0].logprobs for entry in c.choices[0].logprobs.content
    )


def test_concurrent_streams_share_batched_steps_and_write_what_they_write_alone(served, model, monkeypatch):
    base, app = served
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    slow_steps(app, monkeypatch, 0.002)  # the requests overlap in time, as they do on a real model
    before = stats(app)
    requests = [(f"request {i}", 20 + 7 * i, 100 + i) for i in range(8)]  # different lengths: rows leave apart
    texts: dict[int, str] = {}

    def stream(i: int) -> None:
        time.sleep(0.01 * i)  # they join while the others are half-way
        prompt, tokens, seed = requests[i]
        chunks = client.completions.create(model="notes-run", prompt=prompt, max_tokens=tokens, seed=seed, stream=True)
        texts[i] = "".join(chunk.choices[0].text for chunk in chunks)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    after = stats(app)
    tokens = after["tokens"] - before["tokens"]
    assert tokens == sum(tokens for _, tokens, _ in requests)
    assert after["steps"] - before["steps"] < tokens / 2  # one batched step served several streams
    for i, (prompt, tokens, seed) in enumerate(requests):
        assert texts[i] == model.complete(prompt, max_tokens=tokens, seed=seed)


BAD = [
    (b"{not json", 400, None, "not valid JSON"),
    (b'{"model": "notes-run", "prompt": "\xff\xfe"}', 400, None, "not UTF-8"),
    (b"[1, 2]", 400, None, "must be a JSON object"),
    (json.dumps({"model": "notes-run", "prompt": 5}), 400, "prompt", "prompt"),
    (json.dumps({"model": "notes-run", "max_tokens": "5"}), 400, "max_tokens", "valid integer"),
    (json.dumps({"model": "notes-run", "max_tokens": -1}), 400, "max_tokens", "greater than or equal to 1"),
    (json.dumps({"model": "notes-run", "max_tokens": 10**9}), 400, "max_tokens", "less than or equal to 4096"),
    (json.dumps({"model": "notes-run", "n": 0}), 400, "n", "greater than or equal to 1"),
    (json.dumps({"model": "notes-run", "n": 1000}), 400, "n", "less than or equal to 16"),
    (json.dumps({"model": "notes-run", "temperature": -1}), 400, "temperature", "temperature must be >= 0"),
    (json.dumps({"model": "notes-run", "top_p": 0}), 400, "top_p", "top_p must be in (0, 1]"),
    (json.dumps({"model": "notes-run", "top_k": -1}), 400, "top_k", "top_k must be from 1"),
    (json.dumps({"model": "notes-run", "seed": 2**64}), 400, "seed", "seed must fit in 64 bits"),
    (json.dumps({"model": "notes-run", "repetition_penalty": 0}), 400, "repetition_penalty", "repetition_penalty must"),
    (json.dumps({"model": "notes-run", "frequency_penalty": 0.5}), 400, "frequency_penalty", "repetition_penalty"),
    (json.dumps({"model": "notes-run", "best_of": 3}), 400, "best_of", "best_of"),
    (json.dumps({"model": "notes-run", "suffix": "x"}), 400, "suffix", "suffix"),
    (json.dumps({"model": "notes-run", "tools": []}), 400, "tools", "not a field rnngen supports"),
    (json.dumps({"model": "notes-run", "stop": ""}), 400, "stop", "stop must not be empty"),
    (json.dumps({"model": "notes-run", "prompt": ["x"] * 65}), 400, "prompt", "1 to 64"),
    (json.dumps({"model": "../../etc/passwd", "prompt": "x"}), 404, "model", "not served here"),
    (json.dumps({"prompt": "x"}), 400, "model", "model"),
]


@pytest.mark.parametrize(("body", "status", "param", "message"), BAD)
def test_bad_input_gets_an_openai_error_and_the_server_goes_on(served, body, status, param, message):
    base, _ = served
    code, _, answer = raw(base, "POST", "/v1/completions", body)
    assert code == status and set(answer) == {"error"}
    error = answer["error"]
    assert message in error["message"] and error["param"] == param and error["type"] and "Traceback" not in str(answer)
    assert raw(base, "POST", "/v1/completions", json.dumps({"model": "notes-run", "max_tokens": 3}))[0] == 200


def test_odd_but_valid_json_is_answered_not_crashed_on(served):
    base, _ = served
    echoed = raw(base, "POST", "/v1/completions", '{"model": "notes-run", "prompt": "a\\ud800b", "echo": true}')
    assert echoed[0] == 200 and echoed[2]["choices"][0]["text"].startswith("a\ufffdb")
    code, _, answer = raw(base, "POST", "/v1/completions", '{"model": "notes-run", "prompt": ' + "[" * 100_000 + "]")
    assert code == 400 and "nests too deeply" in answer["error"]["message"]


def test_a_body_over_the_limit_is_refused_with_413(served):
    base, _ = served
    code, _, answer = raw(base, "POST", "/v1/completions", b'{"model": "notes-run", "prompt": "' + b"x" * 10**7 + b'"}')
    assert code == 413 and answer["error"]["code"] == "request_too_large"
    chat = {"model": "notes-run", "messages": [{"role": "user", "content": "x" * 900_000}]}
    assert raw(base, "POST", "/v1/chat/completions", json.dumps(chat))[0] == 400  # under the byte limit, over chars


def test_unknown_routes_and_methods_are_openai_errors(served):
    base, _ = served
    code, _, answer = raw(base, "GET", "/v1/nothing")
    assert code == 404 and answer["error"]["type"] == "invalid_request_error"
    assert raw(base, "GET", "/v1/completions")[0] == 405


def slow_steps(app, monkeypatch, seconds: float) -> None:
    """Make each batched step take `seconds` more: the tiny model steps in microseconds, a real one in milliseconds."""
    lm = app.state.schedulers["notes-run"].batch.lm
    step = lm.step
    monkeypatch.setattr(lm, "step", lambda ids, state: (time.sleep(seconds), step(ids, state))[1])


def test_a_client_that_disconnects_mid_stream_frees_its_row(served, monkeypatch):
    base, app = served
    slow_steps(app, monkeypatch, 0.005)
    before = stats(app)["tokens"]
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        body = json.dumps({"model": "notes-run", "prompt": "x", "max_tokens": 4000, "stream": True}).encode()
        head = (
            f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        )
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 10
        while not stats(app)["rows"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stats(app)["rows"] == 1
    deadline = time.monotonic() + 10
    while stats(app)["rows"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats(app)["rows"] == 0 and stats(app)["tokens"] - before < 4000


def test_a_full_queue_answers_429_with_retry_after(run_dir, monkeypatch):
    with running(run_dir, max_batch=1, max_queue=0) as (base, app):
        slow_steps(app, monkeypatch, 0.01)
        done = threading.Event()

        def occupy() -> None:
            raw(base, "POST", "/v1/completions", json.dumps({"model": "notes-run", "max_tokens": 150}))
            done.set()

        threading.Thread(target=occupy, daemon=True).start()
        deadline = time.monotonic() + 10
        while not stats(app)["rows"] and time.monotonic() < deadline:
            time.sleep(0.005)
        code, headers, answer = raw(base, "POST", "/v1/completions", json.dumps({"model": "notes-run"}))
        assert code == 429 and headers["retry-after"] == "1" and answer["error"]["type"] == "rate_limit_error"
        assert done.wait(60)
        assert raw(base, "POST", "/v1/completions", json.dumps({"model": "notes-run", "max_tokens": 2}))[0] == 200
        # A request that even an idle server could never take is a 400, not a 429 to retry for ever.
        code, _, answer = raw(base, "POST", "/v1/completions", json.dumps({"model": "notes-run", "prompt": ["a"] * 3}))
        assert code == 400 and "send fewer prompts" in answer["error"]["message"]


def test_an_api_key_guards_every_route_but_the_page_and_health(run_dir):
    with running(run_dir, api_key="s3cret") as (base, _):
        assert raw(base, "GET", "/health")[0] == 200
        page = urllib.request.urlopen(base + "/")
        assert page.status == 200 and b"<title>rnngen</title>" in page.read()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            code, _, answer = raw(base, "GET", "/v1/models", headers=headers)
            assert code == 401 and answer["error"]["code"] == "invalid_api_key"
        keyed = openai.OpenAI(base_url=base + "/v1", api_key="s3cret", max_retries=0)
        assert keyed.completions.create(model="notes-run", prompt="a", max_tokens=3).choices[0].text is not None
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base + "/v1", api_key="nope", max_retries=0).models.list()


def test_rnngen_serve_says_where_it_listens_and_stops_gracefully_on_sigterm(run_dir):
    env = {**os.environ, "RNNGEN_CHECKPOINTS": str(run_dir / "checkpoints")}
    process = subprocess.Popen(
        [sys.executable, "-m", "rnngen", "serve", "--port", "0", "--host", "127.0.0.1"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stderr.readline()
        assert line.startswith("rnngen serve: listening on http://127.0.0.1:") and "serving notes-run" in line
        base = line.split("listening on ")[1].split(" ")[0]
        connection = http.client.HTTPConnection(*base.removeprefix("http://").split(":"), timeout=60)
        body = json.dumps({"model": "notes-run", "prompt": "a", "max_tokens": 1500, "stream": True, "seed": 1})
        connection.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        first = response.readline()
        assert first.startswith(b"data: ")
        process.send_signal(signal.SIGTERM)  # stop accepting; the stream in flight still ends
        rest = response.read()
        assert rest.rstrip().endswith(b"data: [DONE]")
        assert process.wait(60) == 0
    finally:
        process.kill()
        process.wait()


def test_a_public_address_without_a_key_is_warned_about(run_cli_in, monkeypatch):
    from rnngen.server import serving

    monkeypatch.setattr(serving, "serve", lambda *args, **kwargs: None)
    result = run_cli_in("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 0, result.output
    assert "warning: 0.0.0.0 is reachable from other machines and no --api-key is set" in result.output
