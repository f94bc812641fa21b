"""`rnngen export --format onnx`: for every model kind, ONNX Runtime alone computes rnngen's logits and completions
from the exported folder; the docs' snippet completes as `rnngen complete` does; errors are one line naming the fix."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sample_text

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

from rnngen.config import ModelConfig, SampleConfig, TrainConfig  # noqa: E402
from rnngen.data.tokenizer import Tokenizer, train, unescape  # noqa: E402
from rnngen.errors import RnngenError  # noqa: E402
from rnngen.export import graph as export_graph  # noqa: E402
from rnngen.export.folder import export  # noqa: E402
from rnngen.generation.completer import Completer  # noqa: E402
from rnngen.models import build, checkpoint  # noqa: E402
from rnngen.store.runs import RunFolder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KINDS = [
    ("rnn", "fused"),
    ("lstm", "fused"),
    ("gru", "fused"),
    ("mingru", "fused"),
    ("minlstm", "fused"),
    ("rnn", "scratch"),
    ("lstm", "scratch"),
    ("gru", "scratch"),
]
IDS = [f"{kind}-{impl}" for kind, impl in KINDS]
PROMPT = "the model reads a token"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer(train([sample_text(20_000)], "unigram", 400))


def save_run(
    checkpoints: Path,
    tok: Tokenizer,
    kind: str = "lstm",
    impl: str = "fused",
    name: str = "run",
    documents: int = 1,
    tie: bool = False,
    embed: int = 16,
    hidden: int = 24,
) -> RunFolder:
    """A run folder as training leaves it (tokenizer, config.json, best.safetensors), its weights livelier than the
    initialisation so that differences show. `documents` 0 is a corpus of one text, whose prompts start after a
    newline."""
    torch.manual_seed(0)
    config = ModelConfig(kind=kind, impl=impl, vocab_size=tok.vocab_size, embed=embed, hidden=hidden, layers=2, tie=tie)
    model = build(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    run = RunFolder(checkpoints / name)
    run.path.mkdir(parents=True)
    run.tokenizer_path.write_bytes(tok.proto)
    ckpt = checkpoint.Checkpoint(
        model=config,
        training=TrainConfig(steps=1),
        corpus={"tokenizer": {"sha256": tok.sha256}, "documents": "rows", "train_documents": documents},
        weights=checkpoint.model_weights(model),
    )
    run.write_config(ckpt.header())
    checkpoint.save(run.file("best.safetensors"), ckpt)
    return run


def greedy_with_onnxruntime(folder: Path, ids: list[int], max_tokens: int) -> tuple[np.ndarray, list[int]]:
    """The logits after each of `ids` and a greedy completion of `max_tokens`, with ONNX Runtime and model.json
    alone: the prompt in one call, then one call a token."""
    meta = json.loads((folder / "model.json").read_text())
    session = ort.InferenceSession(str(folder / meta["graph"]["file"]))
    state = {part["input"]: np.zeros(part["shape"], np.float32) for part in meta["state"]}
    logits, *after = session.run(None, {"tokens": np.asarray([ids], np.int64), **state})
    primed, written = logits[0], []
    while len(written) < max_tokens:
        token = int(logits[0, -1].argmax())
        if token == meta["special_tokens"]["end_of_text"]:
            break
        written.append(token)
        state = dict(zip(state, after))
        logits, *after = session.run(None, {"tokens": np.asarray([[token]], np.int64), **state})
    return primed, written


@pytest.mark.parametrize("kind,impl", KINDS, ids=IDS)
def test_onnx_runtime_computes_the_logits_and_the_greedy_completion_of_rnngen(kind, impl, tok, tmp_path):
    run = save_run(tmp_path / "checkpoints", tok, kind, impl)
    exported = export("run", tmp_path / "out", checkpoints=tmp_path / "checkpoints")
    assert sorted(exported.sizes) == ["model.json", "model.onnx", "tokenizer.model"]
    assert exported.difference <= 1e-4
    reference = Completer.from_checkpoint(run, run.file("best.safetensors"))  # NumPy, as `rnngen complete` on a CPU
    ids = reference.document(tok.encode(PROMPT))
    primed, written = greedy_with_onnxruntime(tmp_path / "out", ids, 30)
    expected, _ = reference.lm.logits_after_each(ids)
    np.testing.assert_allclose(primed, expected, atol=1e-4, rtol=0)
    completion = reference.complete(PROMPT, SampleConfig(max_tokens=30, temperature=0))
    text = completion.text()
    assert written == completion.tokens and tok.decode(written) == text


def test_each_layer_is_onnx_s_own_operator_and_the_lecture_s_gru_resets_before_the_product(tok, tmp_path):
    operators = {}
    for kind, impl in KINDS:
        save_run(tmp_path / "checkpoints", tok, kind, impl, name=f"{kind}-{impl}")
        export(f"{kind}-{impl}", tmp_path / kind / impl, checkpoints=tmp_path / "checkpoints")
        graph = onnx.load(str(tmp_path / kind / impl / "model.onnx")).graph
        operators[kind, impl] = {
            node.op_type: {attribute.name: attribute.i for attribute in node.attribute if attribute.type == 2}
            for node in graph.node
        }
    for kind in ("rnn", "lstm", "gru"):
        assert kind.upper() in operators[kind, "fused"] and kind.upper() in operators[kind, "scratch"]
    # PyTorch's GRU resets after the product (cuDNN's variant), the lecture's before it (Cho et al. 2014).
    assert operators["gru", "fused"]["GRU"]["linear_before_reset"] == 1
    assert operators["gru", "scratch"]["GRU"]["linear_before_reset"] == 0
    for kind in ("mingru", "minlstm"):  # the step form: a loop over time of plain operators
        assert "Loop" in operators[kind, "fused"] and not {"RNN", "LSTM", "GRU"} & set(operators[kind, "fused"])


def test_model_json_tells_a_runtime_the_state_the_start_of_a_document_and_the_bytes_of_each_token(tok, tmp_path):
    save_run(tmp_path / "checkpoints", tok, "lstm", name="documents", documents=5)
    save_run(tmp_path / "checkpoints", tok, "gru", name="one-text", documents=0)
    export("documents", tmp_path / "documents", checkpoints=tmp_path / "checkpoints")
    export("one-text", tmp_path / "one-text", checkpoints=tmp_path / "checkpoints")
    documents = json.loads((tmp_path / "documents" / "model.json").read_text())
    one_text = json.loads((tmp_path / "one-text" / "model.json").read_text())
    # As `rnngen complete` reads a prompt: after the end-of-text id, or after a newline for a corpus of one text.
    assert documents["start"] == [tok.eot_id] == [documents["special_tokens"]["end_of_text"]]
    assert one_text["start"] == tok.encode("\n") == [one_text["special_tokens"]["newline"]]
    assert [(part["input"], part["output"], part["shape"]) for part in documents["state"]] == [
        ("h", "h_out", [2, 1, 24]),
        ("c", "c_out", [2, 1, 24]),
    ]
    assert [part["input"] for part in one_text["state"]] == ["h"]
    assert documents["graph"]["inputs"] == ["tokens", "h", "c"] and documents["graph"]["opset"] == 17
    assert documents["tokenizer"] == {"file": "tokenizer.model", "vocab_size": tok.vocab_size, "byte_fallback": True}
    ids = tok.encode("Naïve ▁ café\n")  # the escaped U+2581 and the byte pieces of ï and é among them
    assert unescape(b"".join(bytes.fromhex(documents["pieces"][i]) for i in ids).decode()) == "Naïve ▁ café\n"
    assert (tmp_path / "documents" / "tokenizer.model").read_bytes() == tok.proto


def test_a_tied_model_stores_its_embedding_once(tok, tmp_path):
    save_run(tmp_path / "checkpoints", tok, "lstm", name="tied", tie=True, embed=24)
    save_run(tmp_path / "checkpoints", tok, "lstm", name="untied", tie=False, embed=24)
    tied = export("tied", tmp_path / "tied", checkpoints=tmp_path / "checkpoints")
    untied = export("untied", tmp_path / "untied", checkpoints=tmp_path / "checkpoints")
    embedding = tok.vocab_size * 24 * 4
    assert untied.sizes["model.onnx"] - tied.sizes["model.onnx"] > 0.9 * embedding  # the head's bias: the rest
    assert tied.difference <= 1e-4


def test_int8_weights_make_a_smaller_graph_that_still_completes(tok, tmp_path):
    run = save_run(tmp_path / "checkpoints", tok, "lstm", hidden=128, embed=64)
    full = export("run", tmp_path / "float32", checkpoints=tmp_path / "checkpoints")
    small = export("run", tmp_path / "int8", quantize="int8", checkpoints=tmp_path / "checkpoints")
    assert small.sizes["model.onnx"] < 0.4 * full.sizes["model.onnx"]
    assert json.loads((tmp_path / "int8" / "model.json").read_text())["graph"]["weights"] == "int8"
    assert 1e-4 < small.difference < 1.0  # other logits, by design, and told
    ops = {node.op_type for node in onnx.load(str(tmp_path / "int8" / "model.onnx")).graph.node}
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= ops
    reference = Completer.from_checkpoint(run, run.file("best.safetensors"))
    primed, written = greedy_with_onnxruntime(tmp_path / "int8", reference.document(tok.encode(PROMPT)), 10)
    assert len(written) == 10 and np.isfinite(primed).all()


def docs_snippet() -> str:
    """The Python of docs/export.md that completes a prompt with onnxruntime and sentencepiece alone."""
    text = (ROOT / "docs" / "export.md").read_text()
    [code] = [block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "onnxruntime" in block]
    return code


def test_the_docs_snippet_completes_as_rnngen_complete_does_without_torch(tok, tmp_path, run_cli):
    save_run(tmp_path / "checkpoints", tok, "gru", name="notes-gru")
    export("notes-gru", tmp_path / "notes-onnx", checkpoints=tmp_path / "checkpoints")
    code = docs_snippet()
    assert len(code.strip().splitlines()) <= 16
    check = "\nimport sys\nassert 'torch' not in sys.modules and 'rnngen' not in sys.modules\n"
    done = subprocess.run(
        [sys.executable, "-c", code + check], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    prompt = re.search(r'sp\.encode\("([^"]*)"\)', code).group(1)
    tokens = int(re.search(r"range\((\d+)\)", code).group(1))
    result = run_cli(
        "--checkpoints-dir", str(tmp_path / "checkpoints"), "complete", prompt, "--checkpoint", "notes-gru",
        "--temperature", "0", "--max-tokens", str(tokens), "--json",
    )  # fmt: skip
    assert done.stdout == json.loads(result.output)["completion"] + "\n"


def test_the_command_writes_the_folder_and_says_what_it_wrote(tok, tmp_path, run_cli):
    save_run(tmp_path / "checkpoints", tok, "minlstm", name="notes")
    result = run_cli(
        "--checkpoints-dir", str(tmp_path / "checkpoints"), "export", "notes", "--out", str(tmp_path / "o")
    )
    assert result.exit_code == 0, result.output
    assert "model.onnx" in result.output and re.search(r"wrote 3 files \(.* MB\) to .*o; ", result.output)
    assert sorted(path.name for path in (tmp_path / "o").iterdir()) == ["model.json", "model.onnx", "tokenizer.model"]
    help_text = run_cli("export", "--help").output
    assert "rnngen export notes-lstm --format web --out site" in help_text and "--quantize [int8]" in help_text


def test_export_help_imports_no_torch():
    code = (
        "import sys; from rnngen.cli.main import cli; from click.testing import CliRunner; "
        "CliRunner().invoke(cli, ['export', '--help']); print('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == ["False"]


def one_line(error: RnngenError) -> str:
    message = str(error)
    assert "\n" not in message
    return message


def test_a_bad_run_name_an_unknown_format_or_quantization_are_one_line_naming_the_fix(tok, tmp_path, run_cli):
    save_run(tmp_path / "checkpoints", tok)
    where = {"checkpoints": tmp_path / "checkpoints"}
    with pytest.raises(RnngenError) as bad_run:
        export("nope", tmp_path / "out", **where)
    assert "no checkpoint or run folder at nope: see `rnngen runs`" in one_line(bad_run.value)
    with pytest.raises(RnngenError) as bad_format:
        export("run", tmp_path / "out", format="tflite", **where)
    assert one_line(bad_format.value) == "unknown format 'tflite': choose one of onnx, web"
    with pytest.raises(RnngenError) as bad_quantize:
        export("run", tmp_path / "out", quantize="int4", **where)
    assert one_line(bad_quantize.value) == "unknown quantize 'int4': choose int8 or none"
    assert not (tmp_path / "out").exists()
    result = run_cli("export", "run", "--out", str(tmp_path / "o"), "--format", "x")
    assert result.exit_code == 2 and "'x' is not one of 'onnx', 'web'" in result.output


def test_a_folder_that_exists_is_kept_unless_force_replaces_an_earlier_export(tok, tmp_path, run_cli):
    save_run(tmp_path / "checkpoints", tok)
    where = {"checkpoints": tmp_path / "checkpoints"}
    (tmp_path / "empty").mkdir()
    export("run", tmp_path / "empty", **where)  # an empty folder: nothing to lose
    assert (tmp_path / "empty" / "model.onnx").is_file()
    with pytest.raises(RnngenError) as exists:
        export("run", tmp_path / "empty", **where)
    assert f"{tmp_path / 'empty'} already exists: pass force to replace it, or another out" == one_line(exists.value)
    before = (tmp_path / "empty" / "model.onnx").stat().st_mtime_ns
    export("run", tmp_path / "empty", force=True, **where)
    assert (tmp_path / "empty" / "model.onnx").stat().st_mtime_ns != before
    # `force` replaces an earlier export only: a folder of anything else, the run's own included, is left alone.
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    for other in (tmp_path / "notes", tmp_path / "checkpoints" / "run"):
        with pytest.raises(RnngenError, match="is not a folder rnngen export wrote, so force leaves it alone"):
            export("run", other, force=True, **where)
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
    assert (tmp_path / "checkpoints" / "run" / "best.safetensors").is_file()
    result = run_cli(
        "--checkpoints-dir", str(tmp_path / "checkpoints"), "export", "run", "--out", str(tmp_path / "empty")
    )
    assert result.exit_code == 1 and "already exists: pass --force to replace it, or another --out" in result.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_a_graph_that_differs_from_rnngen_s_model_is_refused_and_nothing_is_written(tok, tmp_path, monkeypatch):
    save_run(tmp_path / "checkpoints", tok, "gru")
    exportable = export_graph.exportable

    def off(model):  # an exporter that gets one weight wrong
        graph, cho = exportable(model)
        graph = copy.deepcopy(graph)  # the fused GRU exports the model itself, whose weights the reference shares
        with torch.no_grad():
            graph.head.bias[3] += 0.01
        return graph, cho

    monkeypatch.setattr(export_graph, "exportable", off)
    with pytest.raises(RnngenError) as wrong:
        export("run", tmp_path / "out", checkpoints=tmp_path / "checkpoints")
    assert "the ONNX graph computes other logits than rnngen's model (largest difference 0.01" in one_line(wrong.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]


def test_without_onnx_runtime_the_export_names_the_extra_to_install(tok, tmp_path, monkeypatch):
    save_run(tmp_path / "checkpoints", tok)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an import of a missing package raises
    with pytest.raises(RnngenError) as missing:
        export("run", tmp_path / "out", checkpoints=tmp_path / "checkpoints")
    assert one_line(missing.value) == (
        "rnngen export needs onnxruntime: pip install 'rnngen[export]' (onnx and onnxruntime)"
    )
