"""Completion on the CPU without torch: the NumPy model equals the torch model for every kind, and
checkpoints are read, checked and completed from without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import sample_text
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rnngen.config import ModelConfig, SampleConfig, TrainConfig
from rnngen.data.tokenizer import Tokenizer, train
from rnngen.errors import CheckpointError, RnngenError
from rnngen.generation import numpy_lm, torch_lm
from rnngen.generation.completer import Completer
from rnngen.generation.language_model import LanguageModel
from rnngen.generation.numpy_lm import NumpyLM
from rnngen.generation.torch_lm import TorchLM
from rnngen.models import build, checkpoint
from rnngen.models.state import select_rows
from rnngen.store.checkpoint_format import read_header
from rnngen.store.runs import RunFolder
from rnngen.store.schema import parameter_shapes

KINDS = [
    ("rnn", "fused"),
    ("lstm", "fused"),
    ("gru", "fused"),
    ("rnn", "scratch"),
    ("lstm", "scratch"),
    ("gru", "scratch"),
    ("mingru", "fused"),
    ("minlstm", "fused"),
]
IDS = [f"{kind}-{impl}" for kind, impl in KINDS]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer(train([sample_text(20_000)], "unigram", 400))


def model_of(kind: str, impl: str, vocab: int, embed: int = 12, hidden: int = 16, tie: bool = True):
    torch.manual_seed(0)
    model = build(ModelConfig(kind=kind, impl=impl, vocab_size=vocab, embed=embed, hidden=hidden, layers=2, tie=tie))
    with torch.no_grad():  # livelier weights than the initialisation, so that differences show
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.3)
    return model.eval()


def states(state) -> list[np.ndarray]:
    parts = state if isinstance(state, tuple) else (state,)
    return [part.numpy() if isinstance(part, torch.Tensor) else part for part in parts]


@pytest.mark.parametrize("kind,impl", KINDS, ids=IDS)
@pytest.mark.parametrize("tie", [True, False])
def test_primed_logits_and_state_equal_the_torch_model(kind, impl, tie, monkeypatch):
    model = model_of(kind, impl, 40, tie=tie)
    ids = torch.randint(0, 40, (1, 23), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, final = model(ids)
    # Chunks of 5 tokens: the carried state between chunks must give the one-pass result.
    monkeypatch.setattr(numpy_lm, "PRIME_CHUNK", 5)
    monkeypatch.setattr(torch_lm, "PRIME_CHUNK", 5)
    for lm in (NumpyLM.from_module(model), TorchLM(model)):
        logits, state = lm.prime(ids[0].tolist())
        logits = logits.numpy() if isinstance(logits, torch.Tensor) else logits
        np.testing.assert_allclose(logits, full[0, -1].numpy(), rtol=1e-4, atol=1e-5)
        for ours, theirs in zip(states(state), states(final)):
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_both_models_step_rows_and_score_positions_as_the_torch_model_does(kind):
    # What completion and beam search ask of a backend, checked against the torch model's own forward pass.
    model = model_of(kind, "fused", 40)
    prompt, nexts = [3, 14, 15, 9], [2, 6, 5]
    with torch.no_grad():
        full, _ = model(torch.tensor([prompt]))
        after = model(torch.tensor([prompt + [token] for token in nexts]))[0][:, -1]
    lm: LanguageModel
    for lm in (NumpyLM.from_module(model), TorchLM(model)):
        each, _ = lm.logits_after_each(prompt)
        assert each.dtype == np.float32
        np.testing.assert_allclose(each, full[0].numpy(), rtol=1e-4, atol=1e-5)
        # One primed row copied to three beams, each fed its own token.
        _, state = lm.prime(prompt)
        logits, _ = lm.step(lm.ids(nexts), select_rows(state, [0, 0, 0]))
        logits = logits.numpy() if isinstance(logits, torch.Tensor) else logits
        np.testing.assert_allclose(logits, after.numpy(), rtol=1e-4, atol=1e-5)
        assert lm.flags(40).tolist() == [False] * 40
        generators = [lm.generator(seed) for seed in (7, 7, 8)]
        draws = [[lm.ops.uniform(generator) for _ in range(2)] for generator in generators]
        assert draws[0] == draws[1] != draws[2] and draws[0][0] != draws[0][1]


@pytest.mark.parametrize("kind,impl", KINDS, ids=IDS)
def test_completions_beams_and_probabilities_equal_the_torch_path(kind, impl, tok):
    model = model_of(kind, impl, tok.vocab_size, embed=16, hidden=24)
    on_numpy, on_torch = Completer(NumpyLM.from_module(model), tok), Completer(TorchLM(model), tok)
    greedy = SampleConfig(max_tokens=25, temperature=0)
    a = on_numpy.complete("the model", greedy, alternatives=3)
    b = on_torch.complete("the model", greedy, alternatives=3)
    assert a.text() == b.text() and a.tokens == b.tokens and a.reason == b.reason
    np.testing.assert_allclose([s.prob for s in a.steps], [s.prob for s in b.steps], rtol=1e-4)
    assert [[t for t, _ in s.alternatives] for s in a.steps] == [[t for t, _ in s.alternatives] for s in b.steps]
    beams_a = on_numpy.beam_search("the model", 3, 8)
    beams_b = on_torch.beam_search("the model", 3, 8)
    assert [beam.tokens for beam in beams_a] == [beam.tokens for beam in beams_b]
    np.testing.assert_allclose([beam.score for beam in beams_a], [beam.score for beam in beams_b], rtol=1e-4)


@pytest.mark.parametrize("kind,impl", KINDS, ids=IDS)
def test_parameter_shapes_are_what_the_model_stores(kind, impl):
    for tie, embed in ((True, 12), (True, 16), (False, 12)):
        model = build(ModelConfig(kind=kind, impl=impl, vocab_size=30, embed=embed, hidden=16, layers=2, tie=tie))
        stored = {name: tuple(t.shape) for name, t in checkpoint.model_weights(model).items()}
        assert parameter_shapes(model.config) == stored


def test_seeded_samples_repeat_on_every_run_and_differ_between_seeds(tok):
    completer = Completer.for_module(model_of("lstm", "fused", tok.vocab_size), tok)
    cfg = SampleConfig(max_tokens=30, temperature=1.0, top_k=50, top_p=0.95, repetition_penalty=1.2, seed=7)
    first = completer.complete("the model", cfg).text()
    assert completer.complete("the model", cfg).text() == first
    again = Completer.for_module(model_of("lstm", "fused", tok.vocab_size), tok)
    assert again.complete("the model", cfg).text() == first
    other = SampleConfig(max_tokens=30, temperature=1.0, top_k=50, top_p=0.95, repetition_penalty=1.2, seed=8)
    assert completer.complete("the model", other).text() != first


def save_run(tmp_path, tok: Tokenizer, kind: str = "lstm", impl: str = "fused") -> RunFolder:
    """A run folder as training leaves it: tokenizer, config.json and best.safetensors."""
    model = model_of(kind, impl, tok.vocab_size)
    run = RunFolder(tmp_path / "checkpoints" / "run")
    run.path.mkdir(parents=True)
    run.tokenizer_path.write_bytes(tok.proto)
    ckpt = checkpoint.Checkpoint(
        model=model.config,
        training=TrainConfig(steps=1),
        corpus={"tokenizer": {"sha256": tok.sha256}, "documents": "rows", "train_documents": 1},
        weights=checkpoint.model_weights(model),
    )
    run.write_config(ckpt.header())
    checkpoint.save(run.file("best.safetensors"), ckpt)
    return run


def test_complete_and_chat_on_the_cpu_import_no_torch(tok, tmp_path):
    run = save_run(tmp_path, tok)
    code = (
        "import sys; from rnngen.cli.main import cli; "
        f"cli(['--checkpoints-dir', {str(run.path.parent)!r}, 'complete', 'the model', '--max-tokens', '5', "
        "'--seed', '1', '--show-probs', '--top-alternatives', '2', '--json'], standalone_mode=False); "
        f"cli(['--checkpoints-dir', {str(run.path.parent)!r}, 'complete', 'the', '--beam', '2', '--max-tokens', "
        "'4', '--json'], standalone_mode=False); "
        f"cli(['--checkpoints-dir', {str(run.path.parent)!r}, 'chat', '--max-tokens', '3'], "
        "standalone_mode=False); "
        "print(); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, input="the model\n/quit\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "False" and len(json.loads(lines[0])["steps"]) <= 5 and json.loads(lines[1])["beam"] == 0
    assert result.stdout.count("> ") == 2  # chat read the prompt line, then /quit


@pytest.mark.parametrize("kind,impl", KINDS, ids=IDS)
def test_a_checkpoint_completes_alike_read_with_or_without_torch(kind, impl, tok, tmp_path):
    run = save_run(tmp_path, tok, kind, impl)
    cfg = SampleConfig(max_tokens=12, temperature=0)
    without = Completer.from_checkpoint(run, run.file("best.safetensors"))
    model, _, _ = checkpoint.load_model(run, run.file("best.safetensors"))
    assert isinstance(without.lm, NumpyLM)
    assert without.complete("the", cfg).tokens == Completer(TorchLM(model), tok).complete("the", cfg).tokens


def test_a_header_that_does_not_fit_its_tensors_is_refused_before_anything_is_built(tok, tmp_path, monkeypatch):
    run = save_run(tmp_path, tok)
    path = run.file("best.safetensors")
    tensors = load_file(path)
    for hidden in (12000, 10**9):
        with safe_open(path, framework="numpy") as file:
            meta = file.metadata()
        header = json.loads(meta["rnngen"])
        header["model"]["hidden"] = hidden
        bad = tmp_path / f"hidden-{hidden}.safetensors"
        save_file(tensors, bad, metadata={**meta, "rnngen": json.dumps(header)})
        # Today a hidden size of 12000 builds a 2.5 GB model and 10**9 asks for 1 TB before the
        # mismatch shows: now no tensor is read and no model is built before the refusal.
        with monkeypatch.context() as patched:
            patched.setattr(checkpoint, "load_tensors", _must_not_run)
            patched.setattr(NumpyLM, "__init__", _must_not_run)
            patched.setattr(torch.nn.Module, "__init__", _must_not_run)
            refusals(bad, run)


def _must_not_run(*args, **kwargs):
    raise AssertionError("read or built before the header was checked")


def refusals(bad, run):
    """Every way of opening `bad` refuses it with the header check's error."""
    for read in (read_header, checkpoint.load):
        with pytest.raises(CheckpointError, match="does not fit its own model configuration.*needs"):
            read(bad)
    with pytest.raises(CheckpointError, match="does not fit"):
        Completer.from_checkpoint(run, bad)


def test_long_prompts_are_primed_in_chunks(tok, monkeypatch):
    # A prompt far longer than a chunk holds no [tokens, vocab] or [tokens, 4 hidden] array at once.
    model = model_of("lstm", "fused", tok.vocab_size)
    sizes = []
    real = NumpyLM._run

    def watched(self, x, state, *rest):
        sizes.append(x.shape[0])
        return real(self, x, state, *rest)

    monkeypatch.setattr(NumpyLM, "_run", watched)
    completer = Completer.for_module(model, tok)
    ids = tok.encode("gradients flow back through time " * 400)
    completer.prime("gradients flow back through time " * 400)
    assert max(sizes) == numpy_lm.PRIME_CHUNK and sum(sizes) == len(ids) + 1


def test_bad_values_get_one_line_errors_naming_the_fix(tok):
    completer = Completer.for_module(model_of("gru", "fused", tok.vocab_size), tok)
    with pytest.raises(RnngenError, match="repetition_penalty must be from 1e-06 to 1e\\+06"):
        SampleConfig(repetition_penalty=float("nan"))
    with pytest.raises(RnngenError, match="temperature must be >= 0"):
        SampleConfig(temperature=float("nan"))
    with pytest.raises(RnngenError, match="length_penalty must be a finite number"):
        completer.beam_search("the", 2, 5, length_penalty=float("nan"))
    with pytest.raises(RnngenError, match="seed must fit in 64 bits"):
        SampleConfig(seed=2**64)
    SampleConfig(seed=2**64 - 1), SampleConfig(seed=-1)
    with pytest.raises(RnngenError, match=f"alternatives {tok.vocab_size + 1} is more than the vocabulary"):
        completer.complete("the", SampleConfig(), alternatives=tok.vocab_size + 1)


def test_complete_refuses_bad_values_in_one_line(run_cli, tok, tmp_path):
    save_run(tmp_path, tok)
    cases = {
        ("--repetition-penalty", "nan"): "--repetition-penalty must be from 1e-06 to 1e+06",
        ("--beam", "2", "--length-penalty", "nan"): "--length-penalty must be a finite number",
        ("--seed", str(2**64)): "--seed must fit in 64 bits",
        ("--top-alternatives", "100000"): "is more than the vocabulary",
    }
    for args, message in cases.items():
        result = run_cli("complete", "the", "--max-tokens", "3", *args)
        assert result.exit_code == 1 and message in result.output and "a bug?" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    result = run_cli("complete", "-", "--max-tokens", "3", input=b"the model\n\xe6 latin-1\n")
    assert result.exit_code == 1 and "line 2 of stdin is not UTF-8" in result.output
