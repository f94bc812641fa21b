"""`rnngen lab`: the generators' baselines match their formulas, the answer solves each task, runs repeat by seed."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

from rnngen.lab import experiments
from rnngen.lab.experiments import run_lab
from rnngen.lab.models import LabModel, Size
from rnngen.lab.runner import RunConfig, start_model, train_run
from rnngen.lab.tasks import Adding, Copy, Recall
from rnngen.lab.verdicts import verdict
from rnngen.store.schema import split_gates

TASKS = [Adding(30), Copy(25), Recall(6)]


@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.name)
def test_the_memoryless_predictor_scores_the_formula(task):
    inputs, targets = task.sample(20_000, torch.Generator().manual_seed(1))
    measured = task.score(task.memoryless(inputs), targets)
    assert measured == pytest.approx(task.baseline, rel=0.03)
    assert verdict(task, measured) == "at baseline"


def test_the_baselines_are_the_published_formulas():
    assert Adding(600).baseline == pytest.approx(1 / 6)
    assert Copy(100).baseline == pytest.approx(10 * math.log(8) / 120)
    assert Recall(8, values=16).baseline == 1 / 16


@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.name)
def test_a_model_handed_the_answer_solves_the_task(task):
    inputs, targets = task.sample(500, torch.Generator().manual_seed(2))
    score = task.score(task.oracle(inputs), targets)
    assert score == (1.0 if task.metric == "accuracy" else pytest.approx(0.0, abs=1e-6))
    assert verdict(task, score) == "solved"


def test_the_generators_follow_the_papers_layout():
    inputs, target = Adding(10).sample(200, torch.Generator().manual_seed(0))
    markers = inputs[..., 1]
    assert (markers.sum(1) == 2).all() and (markers[:, :5].sum(1) == 1).all()  # one marker in each half
    assert torch.allclose((inputs[..., 0] * markers).sum(1), target)
    inputs, targets = Copy(7).sample(50, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (50, 27)
    assert (inputs[:, 16] == 9).all() and (inputs[:, 10:16] == 0).all() and (inputs[:, 17:] == 0).all()
    assert (targets[:, -10:] == inputs[:, :10]).all() and (targets[:, :-10] == 0).all()
    assert ((inputs[:, :10] >= 1) & (inputs[:, :10] <= 8)).all()
    inputs, targets = Recall(5).sample(50, torch.Generator().manual_seed(0))
    keys = inputs[:, 0:10:2]
    assert all(len(set(row.tolist())) == 5 for row in keys)  # distinct keys in each sequence
    assert sorted(inputs[0, 10:].tolist()) == sorted(keys[0].tolist())  # every key asked once


def test_the_same_seed_gives_the_same_data_and_run():
    first = Copy(5).sample(4, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, Copy(5).sample(4, torch.Generator().manual_seed(3))))
    config = RunConfig("adding", "gru", 6, seed=4, steps=5, eval_every=2, eval_size=16)
    one, two = train_run(config), train_run(config)
    assert one.curve == two.curve and one.score == two.score
    assert train_run(RunConfig("adding", "gru", 6, seed=5, steps=5, eval_size=16)).score != one.score


def test_a_run_stops_once_solved(monkeypatch):
    from rnngen.lab import runner

    monkeypatch.setattr(runner, "verdict", lambda task, score, curves=(): "solved")
    result = train_run(RunConfig("copy", "attention", 3, steps=50, eval_every=2, eval_size=8))
    assert result.steps == 2


def test_the_library_reports_every_task():
    reports = run_lab(["adding", "gradients", "speed"], ["rnn", "mingru"], lengths=[8], steps=2)
    adding, gradients, speed = reports
    assert [(cell.model, cell.length, cell.runs[0].steps) for cell in adding.cells] == [("rnn", 8, 2), ("mingru", 8, 2)]
    labels = [p.label for p in gradients.profiles]
    assert labels == ["rnn fresh", "rnn trained", "mingru chrono fresh", "mingru chrono trained"]
    assert len(gradients.profiles[0].loss_grad) == 8
    assert gradients.profiles[2].loss_grad != gradients.profiles[3].loss_grad  # the trained model, not a fresh one
    assert set(speed.seconds) == {
        (case, 8) for case in ("gru-scratch", "mingru-loop", "gru-fused", "mingru-scan", "attention")
    }


def test_the_command_prints_json_of_every_run(run_cli):
    result = run_cli("lab", "adding", "--length", "5", "--models", "rnn", "--steps", "3", "--json")
    assert result.exit_code == 0
    [report] = json.loads(result.stdout)
    [run] = report["runs"]
    assert report["task"] == "adding" and report["metric"] == "mse"
    assert run["config"]["model"] == "rnn" and run["config"]["length"] == 5 and run["steps"] == 3
    assert run["baseline"] == pytest.approx(1 / 6)
    assert run["verdict"] in ("solved", "partly", "at baseline", "worse than baseline", "not learned in 3 steps")
    assert run["curve"][0][0] == 0 and run["curve"][-1][0] == 3


def test_the_command_prints_a_table(run_cli):
    result = run_cli("lab", "recall", "--length", "2", "--models", "lstm,attention", "--steps", "2")
    assert result.exit_code == 0
    assert "pairs" in result.stdout and "attention" in result.stdout and "baseline" in result.stdout


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is an optional extra")
def test_the_plot_is_written(run_cli, tmp_path):
    args = ["copy", "--length", "2,3", "--models", "gru", "--steps", "1", "--plot", str(tmp_path / "c.png"), "--curves"]
    assert run_cli("lab", *args).exit_code == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == (tmp_path / "c-curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, message",
    [
        (["adding", "--models", "rnn,transformer"], "--models: unknown transformer"),
        (["copy", "--length", "0"], "--length must be at least 1"),
        (["adding", "--length", "1"], "--length of at least 2"),
        (["recall", "--length", "65"], "recall takes --length of at most 64 pairs (one per key), got 65"),
        (["adding", "--length", "100000", "--models", "rnn"], "adding takes --length of at most 2000, got 100000"),
        (["copy", "--length", "100000000"], "copy takes --length of at most 2000"),
        (["speed", "--length", "100000000"], "speed takes --length of at most 8192"),
        (["copy", "--length", ","], "--length: give at least one length"),
        (["copy", "--time", "nan"], "--time must be a positive number of seconds, got nan"),
        (["copy", "--time", "inf"], "--time must be a positive number of seconds"),
        (["copy", "--time", "0"], "--time must be a positive number of seconds"),
        (["copy", "--seeds", "99999999999999999999"], "--seeds must be from 0 to 9223372036854775807"),
        (["copy", "--seeds", "-1"], "--seeds must be from 0 to"),
        (["copy", "--models", ""], "--models: give at least one model among rnn"),
        (["copy", "--length", "ten"], "is not a comma-separated list"),
        (["copy", "--seeds", ""], "--seeds: give at least one seed"),
        (["copy", "--steps", "0"], "must be at least 1"),
        (["copy", "--plot", "/no/such/folder/c.png"], "does not exist"),
        (["lstm"], "'lstm' is not one of 'adding'"),
        (["copy", "--device", "cuda"], "--device cuda: no CUDA GPU is visible"),
        (["adding", "--init", "default,xavier"], "--init: unknown 'xavier': choose among default, forget1, chrono"),
        (["adding", "--init", ","], "--init: give at least one initialisation"),
        (["copy", "--curves"], "--curves draws beside the --plot picture: add --plot FILE"),
        (["speed", "--curves", "--plot", "s.png"], "--curves draws the learning curves of a trained task: name adding"),
        (["speed", "--init", "chrono"], "--init sets how runs train; speed times fixed models, one at a time: drop"),
        (["speed", "--time", "5"], "--time sets how runs train"),
        (["speed", "--jobs", "2"], "--jobs sets how runs train"),
        (["copy", "--jobs", "0"], "--jobs must be at least 1, got 0"),
    ],
)
def test_bad_options_are_refused_in_one_line(run_cli, args, message, monkeypatch):
    for work in ("train_model", "step_seconds", "gradient_reach"):
        monkeypatch.setattr(experiments, work, _must_not_run)
    result = run_cli("lab", *args)
    assert result.exit_code in (1, 2)
    assert message in result.output and "Traceback" not in result.output and "a bug?" not in result.output


def _must_not_run(*args, **kwargs):
    raise AssertionError("ran before the options were checked")


def test_repeated_lengths_models_and_seeds_run_once():
    [report] = run_lab(["copy"], ["rnn", "gru", "rnn"], lengths=[2, 3, 2], seeds=[0, 0], steps=1)
    assert [(cell.model, cell.length, len(cell.runs)) for cell in report.cells] == [
        ("rnn", 2, 1),
        ("gru", 2, 1),
        ("rnn", 3, 1),
        ("gru", 3, 1),
    ]


def test_the_lab_trains_on_one_thread_and_restores_the_count(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    try:
        run_lab(["copy"], ["rnn"], lengths=[2], steps=1, on_run=lambda run: seen.append(torch.get_num_threads()))
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_help_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from rnngen.cli.main import cli; from click.testing import CliRunner; "
        "result = CliRunner().invoke(cli, ['lab', '--help']); print(result.exit_code, 'torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == ["0", "False"]


def gate_bias(model: LabModel, gate: str) -> torch.Tensor:
    """The bias the gate `gate` of a one-layer lab model adds up to (PyTorch's two vectors summed)."""
    kind, rnn = model.kind, model.rnn
    if kind in ("mingru", "minlstm"):
        return split_gates(kind, rnn.layers[0].proj.bias.detach(), gate)[0]
    return split_gates(kind, (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach(), gate)[0]


def lab_model(kind: str, init: str, t_max: int = 100) -> LabModel:
    torch.manual_seed(0)
    return LabModel(kind, 2, 1, Size(), tokens=False, max_len=t_max, init=init)


def test_the_gate_initialisations_set_the_keep_gate_as_the_papers_do():
    assert torch.allclose(gate_bias(lab_model("lstm", "forget1"), "f"), torch.ones(64))
    chrono = lab_model("lstm", "chrono")
    forget = gate_bias(chrono, "f")
    assert forget.min() >= 0 and forget.max() <= math.log(99) and forget.std() > 0.5  # log U(1, T_max - 1)
    assert torch.allclose(gate_bias(chrono, "i"), -forget)
    # PyTorch's GRU keeps the state with z (h' = (1 - z) n + z h): a positive bias; minGRU keeps it with 1 - z.
    assert (gate_bias(lab_model("gru", "chrono"), "z") >= 0).all()
    assert torch.allclose(gate_bias(lab_model("gru", "forget1"), "z"), torch.ones(64))
    assert (gate_bias(lab_model("mingru", "chrono"), "z") <= 0).all()
    assert torch.allclose(gate_bias(lab_model("mingru", "forget1"), "z"), -torch.ones(64))
    minlstm = lab_model("minlstm", "chrono")
    assert torch.allclose(gate_bias(minlstm, "i"), -gate_bias(minlstm, "f"))
    # The other gates, and the gateless RNN, keep PyTorch's init.
    default = lab_model("lstm", "default")
    assert torch.equal(gate_bias(chrono, "o"), gate_bias(default, "o"))
    assert gate_bias(default, "f").abs().max() < 2 / math.sqrt(64)
    for init in ("forget1", "chrono"):
        assert all(
            torch.equal(a, b)
            for a, b in zip(lab_model("rnn", init).parameters(), lab_model("rnn", "default").parameters())
        )


def curve_of(scores: list[float], every: int = 100) -> list[tuple[int, float]]:
    return [(i * every, score) for i, score in enumerate(scores)]


def test_a_run_still_learning_at_its_end_is_not_called_at_baseline():
    task = Adding(100)  # baseline 1/6, solved below 1/60
    falling = curve_of([0.9, 0.17, 0.167, 0.166, 0.16, 0.15, 0.14, 0.12, 0.10])
    assert verdict(task, 0.10, [falling]) == "not learned in 800 steps"
    flat = curve_of([0.9, 0.17, 0.165, 0.168, 0.166, 0.171, 0.165, 0.169, 0.166])
    assert verdict(task, 0.166, [flat]) == "at baseline"
    assert verdict(task, 0.08, [curve_of([0.9, 0.1, 0.08, 0.081, 0.079, 0.08])]) == "partly"
    assert verdict(task, 0.01, [falling]) == "solved"
    # Any seed still learning makes the cell budget-limited; the longest run gives N.
    assert verdict(task, 0.13, [flat, falling[:5] + [(500, 0.1)]]) == "not learned in 800 steps"
    # Climbing from a fresh model's loss to the baseline is not learning the task.
    assert verdict(task, 0.166, [curve_of([0.9, 0.166])]) == "at baseline"
    # A seed that stopped because it was solved does not make a flat one budget-limited.
    solved_early = curve_of([0.9, 0.17, 0.05, 0.01])
    assert verdict(task, (0.01 + 0.166) / 2, [solved_early, flat]) == "partly"


def test_init_compares_the_initialisations_once_per_model(run_cli):
    args = ["adding", "--length", "6", "--models", "rnn,lstm", "--init", "default,forget1", "--steps", "2", "--json"]
    result = run_cli("lab", *args)
    assert result.exit_code == 0
    [report] = json.loads(result.stdout)
    runs = [(run["config"]["model"], run["config"]["init"]) for run in report["runs"]]
    assert runs == [("rnn", "default"), ("lstm", "default"), ("lstm", "forget1")]


def test_the_table_names_each_cells_initialisation(run_cli):
    result = run_cli("lab", "adding", "--length", "6", "--models", "rnn,gru", "--steps", "2")
    assert result.exit_code == 0
    rows = [line for line in result.stdout.splitlines() if "│" in line]
    assert any("gru chrono" in row for row in rows) and any(" rnn " in row for row in rows)


def test_a_score_clearly_worse_than_the_baseline_is_named_so():
    adding, copy, recall = Adding(100), Copy(10), Recall(4)  # baselines 1/6, 0.693, 1/16
    assert verdict(adding, 3.739, [curve_of([4.1, 3.9, 3.739])]) == "worse than baseline"
    assert verdict(adding, 0.19, [curve_of([0.9, 0.19, 0.19, 0.19])]) == "worse than baseline"  # above 110% of it
    assert verdict(adding, 0.18, [curve_of([0.9, 0.18, 0.18, 0.18])]) == "at baseline"  # within 10% of it
    # Ending worse than the baseline outranks a curve that dipped below it late.
    assert verdict(copy, 0.9, [curve_of([2.3, 0.7, 0.69, 0.69, 0.69, 0.69, 0.5, 0.9])]) == "worse than baseline"
    # An accuracy cannot fall 10% of the way from chance to perfect below a chance of 1/16.
    assert verdict(recall, 0.0, [curve_of([0.0, 0.0])]) == "at baseline"


def test_the_table_says_when_a_run_ends_worse_than_the_baseline(run_cli):
    result = run_cli("lab", "adding", "--length", "6", "--models", "gru", "--steps", "1", "--json")
    assert result.exit_code == 0
    [report] = json.loads(result.stdout)
    [run] = report["runs"]
    assert run["score"] > 1.1 / 6 and run["verdict"] == "worse than baseline"  # one step from a fresh model
    result = run_cli("lab", "adding", "--length", "6", "--models", "gru", "--steps", "1")
    assert result.exit_code == 0 and "worse than baseline" in result.stdout


def without_seconds(report) -> dict:
    runs = [{key: value for key, value in run.items() if key != "seconds"} for run in report.to_dict()["runs"]]
    return {**report.to_dict(), "runs": runs}


def test_runs_trained_side_by_side_give_the_same_results_in_the_same_order():
    args = (["adding", "copy", "gradients"], ["rnn", "mingru", "attention"])
    ended = []
    apart = run_lab(*args, lengths=[6], steps=3, jobs=2, on_run=ended.append)
    alone = run_lab(*args, lengths=[6], steps=3, jobs=1)
    assert [without_seconds(report) for report in apart[:2]] == [without_seconds(report) for report in alone[:2]]
    assert apart[2].to_dict() == alone[2].to_dict()  # gradient reach of the models the workers trained
    assert sorted((run.config.task, run.config.model) for run in ended) == sorted(
        (task, model) for task in ("adding", "copy") for model in args[1]
    )


def test_an_interrupted_lab_ends_its_workers_at_once():
    import multiprocessing
    import time

    def interrupt(run):
        raise KeyboardInterrupt

    # attention solves copy at T = 2 in a few hundred steps; the RNN would train for minutes beside it
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_lab(["copy"], ["attention", "rnn"], lengths=[2], steps=200_000, jobs=2, on_run=interrupt)
    assert time.perf_counter() - started < 60 and multiprocessing.active_children() == []


def test_jobs_are_refused_where_runs_train_one_at_a_time(monkeypatch):
    from rnngen.errors import RnngenError

    monkeypatch.setattr(experiments, "pick", lambda device: torch.device("cuda"))
    monkeypatch.setattr(experiments, "train_model", _must_not_run)
    with pytest.raises(RnngenError, match="on cuda they train one at a time: drop jobs or choose device cpu"):
        run_lab(["copy"], ["rnn"], device="cuda", jobs=2)


def test_the_minimal_models_step_their_recurrence_on_the_cpu_for_short_sequences():
    config = RunConfig("copy", "mingru", 20, size=Size(hidden=16))
    stepped, scanned = start_model(config, max_len=40), start_model(config, max_len=40)
    scanned.rnn.sequential = False
    assert stepped.rnn.sequential  # the quick form's lengths, on the CPU
    inputs = Copy(20).sample(4, torch.Generator().manual_seed(0))[0]
    assert torch.allclose(stepped(inputs), scanned(inputs), atol=1e-5)  # the same function
    assert not start_model(config, max_len=520).rnn.sequential  # long: the scan is the faster
    assert not start_model(RunConfig("copy", "mingru", 20, device="cuda"), max_len=40).rnn.sequential
