"""The Python API, through its public names only: rnngen.load, Model.complete, Model.stream, Model.score,
rnngen.evaluate."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import rnngen
from rnngen.errors import RnngenError


@pytest.fixture
def model(trained, tmp_path):
    return rnngen.load(tmp_path / "checkpoints" / trained)


def test_import_rnngen_loads_neither_torch_nor_datasets():
    code = "import sys, rnngen; print(sorted(m for m in ('torch', 'datasets', 'rnngen.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_loading_and_completing_on_the_cpu_imports_no_torch(trained, tmp_path, device):
    from rnngen.generation.loading import may_have_gpu

    if device == "auto" and may_have_gpu():
        pytest.skip("this machine may have a GPU: auto asks torch")
    # "auto" without a GPU driver is the CPU at once, without importing torch to ask.
    code = (
        f"import sys, rnngen; m = rnngen.load(sys.argv[1], device={device!r}); "
        "text = m.complete('The', max_tokens=5, seed=1); m.score('The model'); "
        "print(len(text) > 0, 'torch' in sys.modules, 'datasets' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "checkpoints" / trained)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["True", "False", "False"]


def test_complete_is_what_the_cli_writes(run_cli, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a run name resolves under $RNNGEN_CHECKPOINTS, as in the CLI
    model = rnngen.load(trained)
    cli = run_cli("complete", "The model", "--max-tokens", "30", "--seed", "1", "--temperature", "0.8", "--plain")
    assert model.complete("The model", max_tokens=30, seed=1, temperature=0.8) + "\n" == cli.output
    greedy = model.complete("The model", max_tokens=30, temperature=0)
    assert greedy == model.complete("The model", max_tokens=30, temperature=0, seed=7)  # greedy ignores the seed


def test_stream_gives_the_completion_piece_by_piece(model):
    pieces = list(model.stream("The gradient", max_tokens=40, top_p=0.9, seed=2))
    assert len(pieces) > 1 and "".join(pieces) == model.complete("The gradient", max_tokens=40, top_p=0.9, seed=2)
    assert model.complete("The", max_tokens=40, seed=2, stop=["e"]).count("e") == 0


def test_score_is_the_bits_per_character_the_model_gave_the_text(run_cli, trained, model):
    # A greedy completion from the start of a document, with the probability of each token it chose:
    # scoring that text must give back the mean of -log2 p over its characters.
    row = json.loads(
        run_cli(
            "complete",
            "",
            "--checkpoint",
            trained,
            "--temperature",
            "0",
            "--max-tokens",
            "40",
            "--show-probs",
            "--json",
        ).output
    )
    text = row["completion"]
    expected = -sum(math.log2(step["prob"]) for step in row["steps"]) / len(text)
    assert model.score(text) == pytest.approx(expected, rel=1e-4)
    assert model.score("the hidden state") < model.score("qzx vvq jjk wpq") < 20


def test_score_of_a_text_longer_than_a_chunk_is_the_sum_of_its_steps(model):
    # The text goes through the model in fused chunks: the state must carry from one chunk to the
    # next, and the torch path (GPUs) must give what the NumPy path gives.
    from rnngen.generation.arrays import PRIME_CHUNK
    from rnngen.generation.completer import Completer
    from rnngen.generation.torch_lm import TorchLM
    from rnngen.models.checkpoint import load_model

    completer = model.completer
    text = "the hidden state carries the past, and the gradient flows back. " * 40
    ids = completer.tokenizer.encode(text)
    assert len(ids) > PRIME_CHUNK + 10
    memory, _ = completer.prime("")
    logits, state, nats = memory.logits, memory.state, 0.0
    for token in ids:
        values = np.asarray(logits, dtype=np.float64)
        nats += values.max() + math.log(np.exp(values - values.max()).sum()) - values[token]
        logits, state = completer.step(completer.lm.ids([token]), state)
        logits = logits[0]
    expected = nats / len(text) / math.log(2)
    assert model.score(text) == pytest.approx(expected, rel=1e-5)
    module, tokenizer, _ = load_model(model.run, model.path, "cpu")
    on_torch = Completer(TorchLM(module), tokenizer, start_with_eot=completer.start == [tokenizer.eot_id])
    assert on_torch.bits_per_character(text) == pytest.approx(expected, rel=1e-4)


def test_evaluate_gives_the_figures_rnngen_evaluate_prints(run_cli, trained):
    result = rnngen.evaluate(trained, max_tokens=500, device="cpu")
    printed = json.loads(run_cli("evaluate", "--checkpoint", trained, "--max-tokens", "500", "--json").output)
    assert result.to_dict() == printed
    assert result.corpus == "notes" and result.split == "val" and result.bounded and 0 < result.val_bpc < 10
    whole = rnngen.evaluate(trained, split="train", batch_size=4, seq_len=64, device="cpu")
    assert whole.split == "train" and not whole.bounded and whole.train_tokens > result.val_tokens


@pytest.mark.parametrize(
    "options, message",
    [
        ({"split": "test"}, "unknown split 'test': choose val or train"),
        ({"max_tokens": 1}, "max_tokens 1 leaves no token to predict"),
        ({"seq_len": 0}, "seq_len must be 1 or more, got 0"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
    ],
)
def test_evaluate_refuses_bad_options_by_name_before_reading_anything(tmp_path, options, message):
    with pytest.raises(RnngenError, match=message):
        rnngen.evaluate(tmp_path / "nowhere", **options)


def test_bad_input_is_an_rnngen_error_naming_the_fix(model, tmp_path):
    with pytest.raises(RnngenError, match="no checkpoint or run folder"):
        rnngen.load(tmp_path / "nowhere")
    with pytest.raises(RnngenError, match="top_p"):
        model.complete("x", top_p=2)
    with pytest.raises(RnngenError, match="empty text"):
        model.score("")
    assert "rnngen.Model lstm" in repr(model)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.complete(b"hi"), "prompt must be a string, got bytes: decode it first"),
        (lambda m: m.score(None), "text must be a string, got NoneType"),
        (lambda m: m.complete("hi", max_tokens="5"), "max_tokens must be a whole number, got '5' (str)"),
        (lambda m: m.complete("hi", max_tokens=5.5), "max_tokens must be a whole number, got 5.5 (float)"),
        # Refused at the call, not at the first piece: a stream that is never read still says what is wrong.
        (lambda m: m.stream("hi", temperature=-1), "temperature must be >= 0"),
        (lambda m: m.complete("hi", stop=5), "stop must be a string, a list of strings or None, got int"),
        (lambda m: m.stream("hi", bogus=1), "unknown sampling option bogus: choose from"),
    ],
)
def test_wrong_types_and_values_are_named_at_the_call(model, call, message):
    with pytest.raises(RnngenError) as caught:
        call(model)
    assert str(caught.value).startswith(message)


def test_an_unknown_device_is_refused_at_once_by_name(trained, tmp_path):
    with pytest.raises(RnngenError, match="unknown device 'tpu': choose one of auto, cpu, cuda, mps"):
        rnngen.load(tmp_path / "checkpoints" / trained, device="tpu")


def test_a_text_read_once_is_completed_after_many_times_as_the_whole_text(model, trained, tmp_path):
    document = "the model reads a token and updates its hidden state " * 20
    state = model.read(document)
    read = []
    real = model.completer.lm.read
    model.completer.lm.read = lambda ids, *args: (read.append(len(ids)), real(ids, *args))[1]
    for question, seed in (("while gradients", 1), (" flow", 2)):
        read.clear()
        assert model.complete(question, after=state, max_tokens=20, seed=seed) == "".join(
            model.stream(document + question, max_tokens=20, seed=seed)
        )
        assert sum(read[:1]) < 2 * len(question) + 10  # the question, not the document, was read
    longer = model.read(" more", after=state)
    assert longer.text == document + " more"
    other = rnngen.load(tmp_path / "checkpoints" / trained)  # another Model, another model's states
    with pytest.raises(RnngenError, match="after is a state of another model"):
        other.complete("x", after=state)
    with pytest.raises(RnngenError, match="after must be a state from Model.read, got str"):
        model.complete("x", after="the model")


def test_stop_none_means_no_stop_strings_and_one_string_is_one_stop(model):
    assert model.complete("The", stop=None, max_tokens=20, seed=3) == model.complete("The", max_tokens=20, seed=3)
    text = model.complete("The", max_tokens=60, seed=3)
    piece = text[5:7]
    assert model.complete("The", stop=piece, max_tokens=60, seed=3) == text[: text.find(piece)]


def test_loading_messages_name_what_is_wrong(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RnngenError, match="empty name") as empty:
        rnngen.load("")
    assert "--name" not in str(empty.value)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(RnngenError, match="photos is a folder but not a run") as folder:
        rnngen.load("photos")
    assert "before the first save" not in str(folder.value) and "--name" not in str(folder.value)
    (tmp_path / "checkpoints" / trained / "tokenizer.model").unlink()
    with pytest.raises(RnngenError, match="tokenizer.model is missing: copy .*corpora/notes/tokenizer.model"):
        rnngen.load(trained)


def test_scores_never_reward_text_outside_a_word_vocabulary(tmp_path, text_file):
    corpora, checkpoints = tmp_path / "corpora", tmp_path / "checkpoints"
    rng = np.random.default_rng(0)
    made_up = " ".join("".join(rng.choice(list("qxzjkv"), 7)) for _ in range(600))
    text_file.write_text(text_file.read_text() + "\n" + made_up)  # the held-out tail: words it never saw
    corpus = rnngen.prepare(str(text_file), tokenizer="word", name="words", corpora=corpora)
    assert corpus.unknown_bytes("val") > 3000 and corpus.unknown_bytes("train") == 0
    summary = rnngen.train("words", "tiny", name="w", corpora=corpora, checkpoints=checkpoints, steps=2, samples=False)
    # Every unknown run of words is one piece: its probability alone made the held-out text nearly free.
    assert summary.last_eval.val_bpc > 4.0
    model = rnngen.load(checkpoints / "w")
    unknown = model.score("qqqq zzzz " * 100)
    known = model.score(text_file.read_text()[:1000])
    assert unknown >= 8.0 > known
