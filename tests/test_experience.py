"""The completion experience: interactive session, beam search, the model's probabilities shown."""

from __future__ import annotations

import io
import json
import math

import torch
from rich.console import Console

from rnngen.cli.chat import ChatSession
from rnngen.cli.common import Paths
from rnngen.config import SampleConfig
from rnngen.generation.beam import beam_search
from rnngen.generation.completer import Completer
from rnngen.generation.read_state import ReadState
from rnngen.models import checkpoint
from rnngen.store.resolve import resolve_checkpoint


def test_chat_session_two_prompts_a_setting_reset_and_quit(run_cli, trained):
    script = "the model\n/temperature 0.1\n/settings\n/keep\ngradients\n/reset\n/top-p 2\n/quit\nnever read\n"
    result = run_cli("chat", "--checkpoint", trained, "--max-tokens", "8", "--seed", "0", input=script)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "temperature 0.1" in out and "keep on" in out and "starts a new document" in out
    assert "/top-p must be in (0, 1], got 2.0" in out
    assert out.count("> ") == 8  # seven lines read, then /quit ends the session before the eighth
    assert "never read" not in out


def test_keep_carries_the_state_and_reset_forgets_it(run_cli, trained, tmp_path):
    run, path = resolve_checkpoint(trained, tmp_path / "checkpoints")
    model, tok, _ = checkpoint.load_model(run, path)

    lines = iter(["/keep on", "the model", "/reset"])
    session = ChatSession(
        Completer.for_module(model, tok),
        SampleConfig(max_tokens=5, seed=0),
        Console(file=io.StringIO()),
        read=lambda prompt: next(lines),
    )
    session.command(["keep", "on"])
    session.turn("the model")
    assert session.memory is not None
    session.command(["reset"])
    assert session.memory is None


def test_beam_search_finds_the_most_likely_sequence_that_greedy_misses():
    # A Markov chain over {0: end, 1: a, 2: b}: greedy takes "a" (0.6), yet "b end" (0.4 * 0.95)
    # beats every sequence that starts with "a" (at most 0.6 * 0.4).
    table = torch.tensor([[1.0, 0.0, 0.0], [0.4, 0.3, 0.3], [0.95, 0.025, 0.025]])

    def step(tokens, state):
        return table[tokens].log(), tokens.view(1, -1, 1)

    start = ReadState(torch.tensor([1e-9, 0.6, 0.4]).log(), torch.zeros(1, 1, 1))
    beams = beam_search(step, start, beams=2, max_tokens=5, eot=0, length_penalty=0.0)
    assert beams[0][0] == [2] and math.isclose(beams[0][1], math.log(0.38), rel_tol=1e-5)
    assert beams[1][0] == [1] and math.isclose(beams[1][1], math.log(0.24), rel_tol=1e-5)


def test_beam_option_and_show_probs_report_what_the_model_computed(run_cli, trained, tmp_path):
    result = run_cli("complete", "the model", "--checkpoint", trained, "--beam", "3", "--max-tokens", "10", "--json")
    beams = [json.loads(line) for line in result.output.splitlines()]
    assert len(beams) == 3 and beams[0]["score"] >= beams[1]["score"] >= beams[2]["score"]

    result = run_cli(
        "complete",
        "the model",
        "--checkpoint",
        trained,
        "--temperature",
        "0",
        "--max-tokens",
        "4",
        "--show-probs",
        "--top-alternatives",
        "3",
        "--json",
    )
    steps = json.loads(result.output)["steps"]
    run, path = resolve_checkpoint(trained, tmp_path / "checkpoints")
    model, tok, _ = checkpoint.load_model(run, path)
    start = Completer.from_checkpoint(run, path).start  # a newline: the corpus is one text, not documents
    with torch.no_grad():
        logits, _ = model(torch.tensor([[*start, *tok.encode("the model")]]))
    probs = torch.softmax(logits[0, -1], -1)
    assert math.isclose(steps[0]["prob"], probs.max().item(), rel_tol=1e-4)  # oneDNN inference vs training kernels
    assert steps[0]["alternatives"][0] == [steps[0]["token"], steps[0]["prob"]]
    assert len(steps[0]["alternatives"]) == 3

    result = run_cli("complete", "the model", "--checkpoint", trained, "--show-probs", "--max-tokens", "4")
    assert result.exit_code == 0 and "p(token):" in result.output


def test_ctrl_c_stops_the_completion_not_the_session(run_cli, trained, tmp_path):
    from rnngen.generation.completer import Completion

    run, path = resolve_checkpoint(trained, tmp_path / "checkpoints")
    model, tok, _ = checkpoint.load_model(run, path)
    completer = Completer.for_module(model, tok)

    class Interrupted(Completion):
        def _generate(self, *args):
            yield "half a sent"
            raise KeyboardInterrupt

    completer.complete = lambda prompt, cfg, *args, **kwargs: Interrupted(completer, prompt, cfg, None)
    lines = iter(["first prompt", "/settings", "/quit"])
    screen = io.StringIO()
    ChatSession(
        completer, SampleConfig(max_tokens=5), Console(file=screen, width=100), read=lambda prompt: next(lines)
    ).run()
    assert "half a sent [stopped]" in screen.getvalue() and "temperature 0.8" in screen.getvalue()


def markov_step(table, calls):
    def step(tokens, state):
        calls.append(len(tokens))
        return table[tokens].log(), state[:, : len(tokens)]

    return step


def test_beam_search_computes_no_step_past_its_last_length():
    table = torch.tensor([[1.0, 0.0, 0.0], [0.1, 0.5, 0.4], [0.1, 0.4, 0.5]])
    calls = []
    start = ReadState(torch.tensor([1e-9, 0.6, 0.4]).log(), torch.zeros(1, 1, 1))
    beams = beam_search(markov_step(table, calls), start, beams=2, max_tokens=4, eot=0, length_penalty=0.0)
    assert len(calls) == 3  # lengths 2, 3 and 4 need a step each; length 1 is the primed logits
    assert all(len(tokens) == 4 for tokens, _, _ in beams)


def test_beam_search_ends_only_hypotheses_ranked_among_the_beams():
    # With 2 beams, "a end" (0.9 * 0.3) ranks third among the extensions: below "a a" and "a b".
    table = torch.tensor([[1.0, 0.0, 0.0], [0.3, 0.35, 0.35], [0.3, 0.35, 0.35]])
    start = ReadState(torch.tensor([1e-9, 0.9, 0.1]).log(), torch.zeros(1, 1, 1))
    beams = beam_search(markov_step(table, []), start, beams=2, max_tokens=3, eot=0, length_penalty=0.0)
    assert [len(tokens) for tokens, _, _ in beams] == [3, 3]  # "a end" (0.27) would outscore them


def test_keep_goes_on_from_the_text_written_before_ctrl_c(run_cli, trained, tmp_path):
    run, path = resolve_checkpoint(trained, tmp_path / "checkpoints")

    screen = Console(file=io.StringIO())
    printed = screen.print

    def interrupt_on_text(*args, style=None, **kwargs):
        if style == "cyan":
            raise KeyboardInterrupt
        printed(*args, **kwargs)

    screen.print = interrupt_on_text
    session = ChatSession(Completer.from_checkpoint(run, path), SampleConfig(max_tokens=50, seed=0), screen, keep=True)
    session.turn("the model")
    assert session.memory is not None  # was None: the running text was lost


def test_a_bad_seed_in_chat_is_one_line_and_the_session_goes_on(run_cli, trained, tmp_path):
    run, path = resolve_checkpoint(trained, tmp_path / "checkpoints")

    lines = iter(["/seed ²", f"/seed {2**64}", "/seed 5", "/quit"])
    screen = io.StringIO()
    ChatSession(
        Completer.from_checkpoint(run, path),
        SampleConfig(max_tokens=5),
        Console(file=screen, width=100),
        read=lambda prompt: next(lines),
    ).run()
    out = screen.getvalue()
    assert "/seed takes a whole number, not '²'" in out and "/seed must fit in 64 bits" in out and "seed 5" in out


def test_chat_runs_without_readline(run_cli, trained, tmp_path, monkeypatch):
    import sys

    from rnngen.cli import chat, complete

    monkeypatch.setitem(sys.modules, "readline", None)  # as on Windows: `import readline` fails
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    ran = []
    monkeypatch.setattr(chat.ChatSession, "run", lambda self: ran.append(self))
    complete._chat(
        Paths(tmp_path / "corpora", tmp_path / "checkpoints"),
        trained,
        "cpu",
        False,
        {
            "max_tokens": 5,
            "temperature": 0.8,
            "top_k": 0,
            "top_p": 1.0,
            "repetition_penalty": 1.0,
            "seed": None,
            "stop": (),
        },
    )
    assert len(ran) == 1


def test_chat_shows_text_that_looks_like_markup_as_typed(run_cli, trained, tmp_path):
    run, path = resolve_checkpoint(trained, tmp_path / "checkpoints")

    lines = iter(["/[/x]", "/temperature [bold]", "/quit"])
    screen = io.StringIO()
    ChatSession(
        Completer.from_checkpoint(run, path),
        SampleConfig(max_tokens=5),
        Console(file=screen, width=100),
        read=lambda prompt: next(lines),
    ).run()
    out = screen.getvalue()
    assert "unknown command /[/x]" in out and "not '[bold]'" in out


def test_beam_applies_stop_to_each_beam_and_refuses_sampling_options_in_one_line(run_cli, trained):
    base = ("complete", "the model", "--checkpoint", trained, "--beam", "3", "--max-tokens", "20", "--json")
    plain = [json.loads(line) for line in run_cli(*base).output.splitlines()]
    stop = next(text[2:4] for text in (row["completion"] for row in plain) if len(text) >= 4)
    stopped = [json.loads(line) for line in run_cli(*base, "--stop", stop).output.splitlines()]
    assert stopped and all(stop not in row["completion"] for row in stopped)
    assert any(row["tokens"] < 20 for row in stopped)
    for extra in (
        ("--temperature", "0.5"),
        ("--top-k", "3"),
        ("--num-samples", "2"),
        ("--show-probs",),
        ("--top-alternatives", "2"),
        ("--seed", "1"),
    ):
        result = run_cli(*base, *extra)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and f"drop {extra[0]}" in lines[0], result.output


def test_beam_and_lengths_are_bounded_by_what_the_model_can_serve(run_cli, trained):
    result = run_cli("complete", "the", "--checkpoint", trained, "--beam", "100000000", "--max-tokens", "3")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "--beam 100000000 is more than" in lines[0]
    result = run_cli("complete", "the", "--checkpoint", trained, "--max-tokens", "100000000")
    assert result.exit_code == 1 and "--max-tokens must be from 1 to 1,000,000" in result.output
    result = run_cli("complete", "the", "--checkpoint", trained, "--num-samples", "100000")
    assert result.exit_code == 2 and "'--num-samples': 100000 is not in the range 1<=x<=10000" in result.output


def test_chat_refuses_an_infinite_temperature_and_keeps_its_own():
    class Stub:
        def generator(self, seed):
            return None

    screen = Console(file=io.StringIO(), width=200)
    session = ChatSession(Stub(), SampleConfig(temperature=0.7), screen)
    session.command(["temperature", "inf"])
    assert session.cfg.temperature == 0.7
    assert "/temperature must be >= 0 and finite" in screen.file.getvalue()
