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
    headers = {k.lower(): v for k, v in response.getheaders()}
    return response.status, headers, json.loads(data) if "json" in headers.get("content-type", "") else data


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
            f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}"
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
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "s3cret"},
            {"Authorization": "Basic s3cret"},
        ):
            code, _, answer = raw(base, "GET", "/v1/models", headers=headers)
            assert code == 401 and answer["error"]["code"] == "invalid_api_key"
        for scheme in ("bearer", "BEARER", "Bearer"):  # the scheme's name is case-insensitive (RFC 7235)
            assert raw(base, "GET", "/v1/models", headers={"Authorization": f"{scheme} s3cret"})[0] == 200
        assert raw(base, "GET", "/metrics")[0] == 401
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


def wait_for_cache(app, model_id: str = "notes-run") -> None:
    """Wait until the scheduler has read every finished text into its cache (it does so when idle)."""
    scheduler = app.state.schedulers[model_id]
    deadline = time.monotonic() + 10
    while scheduler.reading_after and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_second_turn_reads_only_what_is_new_and_writes_the_uncached_text(run_dir, run_cli_in):
    turn1 = [{"role": "system", "content": "Notes. "}, {"role": "user", "content": "the model reads a token"}]
    options = {"model": "notes-run", "max_tokens": 30, "seed": 8, "temperature": 1.0}
    with running(run_dir) as (base, app), running(run_dir, state_cache_mb=0) as (plain_base, _):
        cached = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        plain = openai.OpenAI(base_url=plain_base + "/v1", api_key="unused", max_retries=0)
        first = cached.chat.completions.create(messages=turn1, **options)
        assert first.usage.prompt_tokens_details.cached_tokens == 0
        reply = first.choices[0].message.content
        wait_for_cache(app)
        turn2 = [*turn1, {"role": "assistant", "content": reply}, {"role": "user", "content": " and the gradient"}]
        second = cached.chat.completions.create(messages=turn2, **options)
        running_text = "Notes. the model reads a token" + reply + " and the gradient"
        # The char tokenizer spells text alike wherever it is cut: the state kept after the first turn's text,
        # before its last word, is resumed.
        last_word = len(("Notes. the model reads a token" + reply).rsplit(" ", 1)[-1]) + 1
        usage = second.usage
        assert usage.prompt_tokens == len(running_text)
        assert usage.prompt_tokens_details.cached_tokens == len(running_text) - len(" and the gradient") - last_word
        uncached = plain.chat.completions.create(messages=turn2, **options)
        assert uncached.usage.prompt_tokens_details.cached_tokens == 0
        assert second.choices[0].message.content == uncached.choices[0].message.content
        result = run_cli_in(
            "complete", running_text, "--max-tokens", "30", "--seed", "8", "--temperature", "1", "--plain"
        )
        assert result.output == second.choices[0].message.content + "\n"
        # Streamed, the usage says the same; a repeated prompt resumes before its last word.
        chunks = list(
            cached.completions.create(
                prompt=running_text, stream=True, stream_options={"include_usage": True}, **options
            )
        )
        assert chunks[-1].usage.prompt_tokens_details.cached_tokens > len(running_text) - len(" gradient") - 2
        assert "".join(c.choices[0].text for c in chunks if c.choices) == second.choices[0].message.content


def test_metrics_parse_with_prometheus_own_parser(served, client):
    from prometheus_client.parser import text_string_to_metric_families

    base, _ = served
    client.completions.create(model="notes-run", prompt="the", max_tokens=5, seed=1)
    raw(base, "GET", "/v1/nothing")
    with urllib.request.urlopen(base + "/metrics") as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        families = {family.name: family for family in text_string_to_metric_families(response.read().decode())}
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["rnngen_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests[("/v1/completions", "200")] >= 1 and requests[("other", "404")] >= 1
    for name in ("rnngen_prompt_tokens", "rnngen_cached_prompt_tokens", "rnngen_generation_tokens"):
        assert families[name].type == "counter" and families[name].samples[0].labels == {"model": "notes-run"}
    assert families["rnngen_generation_tokens"].samples[0].value >= 5
    for name in ("rnngen_rows_decoding", "rnngen_requests_waiting", "rnngen_state_cache_bytes"):
        assert families[name].type == "gauge"
    first = {s.name: s.value for s in families["rnngen_time_to_first_token_seconds"].samples}
    assert families["rnngen_time_to_first_token_seconds"].type == "histogram"
    assert first["rnngen_time_to_first_token_seconds_count"] >= 1
    assert families["rnngen_time_between_tokens_seconds"].type == "histogram"


def test_tokenize_then_detokenize_gives_the_text_back(served, model):
    base, _ = served
    text = "the model reads\na token é"
    code, _, tokens = raw(base, "POST", "/tokenize", json.dumps({"content": text}))  # llama.cpp's shape
    assert code == 200 and tokens["count"] == len(tokens["tokens"]) == len(model.completer.tokenizer.encode(text))
    code, _, back = raw(base, "POST", "/detokenize", json.dumps({"tokens": tokens["tokens"]}))
    assert code == 200 and back["content"] == text
    # vLLM's shape: model, prompt or messages, add_special_tokens, and the text back as `prompt`.
    body = {"model": "notes-run", "messages": [{"role": "user", "content": text}], "add_special_tokens": True}
    code, _, special = raw(base, "POST", "/tokenize", json.dumps(body))
    assert code == 200 and special["tokens"][1:] == tokens["tokens"] and special["max_model_len"] > 0
    code, _, pieces = raw(base, "POST", "/tokenize", json.dumps({"content": "ab", "with_pieces": True}))
    assert pieces["tokens"] == [{"id": t, "piece": p} for t, p in zip(tokens_of(model, "ab"), "ab")]
    code, _, answer = raw(base, "POST", "/detokenize", json.dumps({"model": "notes-run", "tokens": [10**6]}))
    assert code == 400 and answer["error"]["param"] == "tokens"


def tokens_of(model, text: str) -> list[int]:
    return model.completer.tokenizer.encode(text)


def test_a_page_on_another_site_cannot_use_a_loopback_server(served):
    base, _ = served
    port = base.rsplit(":", 1)[1]
    body = json.dumps({"model": "notes-run", "prompt": "x", "max_tokens": 2})
    # DNS rebinding: a name of the attacker's that resolves to 127.0.0.1.
    code, _, answer = raw(base, "GET", "/v1/models", headers={"Host": f"evil.example:{port}"})
    assert code == 400 and "--allowed-host evil.example" in answer["error"]["message"]
    # A form-like POST a browser sends from any page without asking.
    foreign = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    code, _, answer = raw(base, "POST", "/v1/completions", body, headers=foreign)
    assert code == 403 and "--cors-origin http://evil.example" in answer["error"]["message"]
    # The server's own page, and clients that are not browsers, are answered.
    assert raw(base, "POST", "/v1/completions", body, headers={"Origin": base})[0] == 200
    assert raw(base, "POST", "/v1/completions", body, headers={"Host": f"localhost:{port}"})[0] == 200
    code, headers, _ = raw(base, "GET", "/v1/models", headers={"Origin": "http://evil.example"})
    assert code == 200 and "access-control-allow-origin" not in headers


def test_allowed_hosts_and_cors_origins_let_the_named_ones_in(run_dir):
    origin = "https://app.example"
    with running(run_dir, allowed_hosts=["notes.example"], cors_origins=[origin]) as (base, _):
        port = base.rsplit(":", 1)[1]
        assert raw(base, "GET", "/v1/models", headers={"Host": f"notes.example:{port}"})[0] == 200
        assert raw(base, "GET", "/v1/models", headers={"Host": f"other.example:{port}"})[0] == 400
        body = json.dumps({"model": "notes-run", "prompt": "x", "max_tokens": 2})
        code, headers, _ = raw(base, "POST", "/v1/completions", body, headers={"Origin": origin})
        assert code == 200 and headers["access-control-allow-origin"] == origin
        preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        assert raw(base, "OPTIONS", "/v1/completions", headers=preflight)[0] == 200
        assert raw(base, "POST", "/v1/completions", body, headers={"Origin": "https://elsewhere.example"})[0] == 403


def test_a_prompt_over_the_token_limit_is_refused_naming_it(run_dir):
    with running(run_dir, max_prompt_tokens=50) as (base, _):
        code, _, answer = raw(base, "POST", "/v1/completions", json.dumps({"model": "notes-run", "prompt": "x" * 60}))
        assert code == 400 and answer["error"]["param"] == "prompt"
        assert "60 tokens, more than the 50" in answer["error"]["message"]
        assert "--max-prompt-tokens" in answer["error"]["message"]
        chat = {"model": "notes-run", "messages": [{"role": "user", "content": "x" * 30}] * 2}
        code, _, answer = raw(base, "POST", "/v1/chat/completions", json.dumps(chat))
        assert code == 400 and answer["error"]["param"] == "messages"
        assert raw(base, "POST", "/v1/completions", json.dumps({"model": "notes-run", "prompt": "x" * 40}))[0] == 200


def test_a_body_that_does_not_arrive_in_time_is_refused_with_408(served, monkeypatch):
    from rnngen.server import app as app_module

    base, _ = served
    monkeypatch.setattr(app_module, "BODY_SECONDS", 0.3)
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 100"
        sock.sendall(head.encode() + b"\r\n\r\n" + b'{"model": ')
        started = time.monotonic()
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer
        assert time.monotonic() - started < 5
        sock.settimeout(5)
        assert sock.recv(4096) == b""  # and the connection is closed


def test_a_failure_reading_one_prompt_ends_that_request_alone(served, model, monkeypatch):
    base, app = served
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    slow_steps(app, monkeypatch, 0.002)
    lm = app.state.schedulers["notes-run"].completer.lm
    poison = model.completer.tokenizer.encode("Z")[0]
    real = lm.read

    def read(ids, *args):
        if poison in ids:
            raise FloatingPointError("a broken prompt")
        return real(ids, *args)

    monkeypatch.setattr(lm, "read", read)
    texts = []
    streaming = threading.Thread(
        target=lambda: texts.append(
            "".join(
                c.choices[0].text
                for c in client.completions.create(model="notes-run", prompt="the", max_tokens=200, seed=3, stream=True)
            )
        )
    )
    streaming.start()
    time.sleep(0.1)
    code, _, answer = raw(base, "POST", "/v1/completions", json.dumps({"model": "notes-run", "prompt": "Z"}))
    assert code == 500 and "reading the prompt failed: FloatingPointError" in answer["error"]["message"]
    streaming.join(60)
    monkeypatch.setattr(lm, "read", real)
    assert texts == [model.complete("the", max_tokens=200, seed=3)]


def test_health_says_ready_and_stopping(run_dir):
    from rnngen.server.app import begin_shutdown

    with running(run_dir) as (base, app):
        code, _, answer = raw(base, "GET", "/health")
        assert code == 200 and answer["status"] == "ok" and "cache_bytes" in answer["models"]["notes-run"]
        begin_shutdown(app, 30)
        code, _, answer = raw(base, "GET", "/health")
        assert code == 503 and answer["status"] == "stopping"


def test_a_stream_cut_by_sigterm_ends_with_an_error_event_and_done(run_dir):
    env = {**os.environ, "RNNGEN_CHECKPOINTS": str(run_dir / "checkpoints")}
    command = [sys.executable, "-m", "rnngen", "serve", "--port", "0", "--shutdown-grace", "1", "--max-batch", "1"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        base = process.stderr.readline().split("listening on ")[1].split(" ")[0]
        connection = http.client.HTTPConnection(*base.removeprefix("http://").split(":"), timeout=60)
        # Eight prompts of 4096 tokens, one row at a time: far longer than the grace period.
        body = json.dumps({"model": "notes-run", "prompt": ["a"] * 8, "max_tokens": 4096, "stream": True})
        connection.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.readline().startswith(b"data: ")
        process.send_signal(signal.SIGTERM)
        events = [line for line in response.read().split(b"\n\n") if line.strip()]
        assert events[-1] == b"data: [DONE]"
        assert json.loads(events[-2].removeprefix(b"data: "))["error"]["code"] == "shutting_down"
        assert process.wait(60) == 0
        stderr = process.stderr.read()
        assert "Traceback" not in stderr and "Cancel" not in stderr, stderr
    finally:
        process.kill()
        process.wait()


def test_serve_uses_the_cores_other_processes_leave_free(monkeypatch):
    from rnngen.cli import serve as serve_command
    from rnngen.training import threads

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "")  # what the test sets is undone after it
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for cores, busy, chosen in ((2, 1.0, "1"), (2, 0.0, "1"), (8, 0.0, "7"), (8, 3.0, "4")):
        monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        monkeypatch.setattr(threads, "busy_cores", lambda seconds=0.1, busy=busy: busy)
        note = serve_command._blas_threads()
        assert os.environ["OPENBLAS_NUM_THREADS"] == chosen  # the free cores, less one for the event loop
        assert (note is None) == (busy == 0) and (note is None or f"NumPy computes on {chosen} thread" in note)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # the user's choice wins
    assert serve_command._blas_threads() is None and os.environ["OPENBLAS_NUM_THREADS"] == "2"
