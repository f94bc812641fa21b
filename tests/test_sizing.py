"""A run given only a time budget sizes its model for the tokens that budget buys on this machine."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from rnngen.config import PRESETS, ModelConfig, Preset, TrainConfig
from rnngen.store.runs import RunFolder
from rnngen.training import sizing

CPU = PRESETS["cpu"]
# A 1M-token text, as tiny shakespeare is with the char tokenizer; only its length matters to the rule.
TEXT = np.zeros(1_000_000, dtype=np.uint16)


def candidates(**overrides):
    model = dataclasses.replace(CPU.model, vocab_size=324)
    train = dataclasses.replace(CPU.train, **overrides)
    return sizing.sized_configs(model, train, CPU.sizes, {})


def paced(speeds: dict[int, float]):
    """A probe that reports `speeds` (tokens/s by width) without training."""
    return lambda model, train, tokens: speeds[model.hidden]


class Clock:
    """Seconds that pass only when a probe runs: `step` per probe."""

    def __init__(self, step: float = 0.0):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now

    def measure(self, speeds: dict[int, float]):
        def probe(model, train, tokens):
            self.now += self.step
            return speeds[model.hidden]

        return probe


# The three widths' paces on a 2-core machine: the wider, the slower (docs/tuning.md).
SPEEDS = {256: 26_000.0, 384: 14_000.0, 512: 6_600.0}


def test_the_width_grows_with_the_time_the_run_is_given():
    chosen = {}
    for seconds in (40.0, 180.0, 7200.0):
        model, train, record = sizing.choose(candidates(time_budget=seconds), TEXT, "char", Clock(), paced(SPEEDS))
        chosen[seconds] = model.hidden
        assert (model.embed, train.batch_size) == (model.hidden, dict(CPU.sizes)[model.hidden])
        assert record.chosen.excess_bpc == min(option.excess_bpc for option in record.options)
    assert chosen[40.0] < chosen[7200.0] == 512
    assert chosen[40.0] <= chosen[180.0] <= chosen[7200.0]


def test_a_faster_machine_buys_a_wider_model_in_the_same_time():
    slow = sizing.choose(candidates(time_budget=180.0), TEXT, "char", Clock(), paced(SPEEDS))[0]
    fast = {width: speed * 8 for width, speed in SPEEDS.items()}
    quick = sizing.choose(candidates(time_budget=180.0), TEXT, "char", Clock(), paced(fast))[0]
    assert quick.hidden > slow.hidden


def test_the_probe_is_taken_from_the_budget_and_stops_at_its_share():
    clock = Clock(step=2.0)  # each probe takes 2 s: more than 5% of 60 s after the second
    model, train, record = sizing.choose(candidates(time_budget=60.0), TEXT, "char", clock, clock.measure(SPEEDS))
    assert [option.width for option in record.options] == [256, 384]
    assert record.probe_seconds == 4.0 and train.time_budget == 56.0
    assert "60 s" in record.line() and "probe 4.0 s" in record.line()


def never_probed(model, train, tokens):
    raise AssertionError("a budget this short is not probed")


@pytest.mark.parametrize("seconds", [0.001, 5.0, 29.9])
def test_a_budget_too_short_to_probe_trains_the_smallest_candidate_unprobed(seconds):
    model, train, record = sizing.choose(candidates(time_budget=seconds), TEXT, "char", Clock(), never_probed)
    assert (model.hidden, train.batch_size) == CPU.sizes[0]
    assert train.time_budget == seconds and record.probe_seconds == 0.0 and record.options == ()
    assert record.line().startswith(
        f"sized for the clock: 2x256, batch 32, the smallest candidate, not probed: {seconds:g} s"
    )
    assert not re.search(r"-\d", record.line())


def test_a_probe_that_eats_the_budget_still_trains_and_reports_no_negative_tokens():
    clock = Clock(step=40.0)  # a loaded machine: the first probe alone takes longer than the whole budget
    model, train, record = sizing.choose(candidates(time_budget=30.0), TEXT, "char", clock, clock.measure(SPEEDS))
    assert train.time_budget == sizing.MIN_TRAINING_SECONDS
    assert "26k tokens" in record.line() and not re.search(r"-\d", record.line())


@pytest.mark.parametrize("tokenizer", ["char", "unigram"])
def test_past_the_passes_it_was_fitted_on_more_tokens_predict_no_gain(tokenizer):
    rule, unique, parameters = sizing.fit_for(tokenizer), 100_000, 2_000_000
    edge = rule.excess(parameters, rule.passes * unique, unique)
    assert rule.excess(parameters, 0.5 * rule.passes * unique, unique) > edge
    assert [rule.excess(parameters, times * rule.passes * unique, unique) for times in (2, 10, 1000)] == [edge] * 3


def test_on_a_tiny_text_the_larger_model_wins_once_both_pass_the_fitted_passes():
    tiny = np.zeros(100_000, dtype=np.uint16)
    # In 120 s 2x256 reads the text 30 times and 2x512 8 times (2x384 next to nothing): were more passes than the
    # fit saw worth what its curve says, 2x256's would win.
    speeds = {256: 25_000.0, 384: 1.0, 512: 6_700.0}
    model, _, _ = sizing.choose(candidates(time_budget=120.0), tiny, "char", Clock(), paced(speeds))
    assert model.hidden == 512
    # A budget of an hour on it: no extrapolation, so the largest, at the fitted edge's prediction.
    model, _, record = sizing.choose(candidates(time_budget=3600.0), tiny, "char", Clock(), paced(SPEEDS))
    rule = sizing.fit_for("char")
    assert model.hidden == 512
    assert record.chosen.excess_bpc == rule.excess(record.chosen.parameters, rule.passes * len(tiny), len(tiny))


@pytest.mark.parametrize(
    "overrides", [{"hidden": 300}, {"embed": 128}, {"layers": 3}, {"batch_size": 8}, {"seq_len": 32}, {"kind": "gru"}]
)
def test_a_shape_the_user_names_keeps_the_preset_with_that_value(overrides):
    model = dataclasses.replace(CPU.model, vocab_size=324)
    assert sizing.sized_configs(model, CPU.train, CPU.sizes, overrides) == []
    assert len(sizing.sized_configs(model, CPU.train, CPU.sizes, {"lr": 3e-3, "dropout": 0.1})) == len(CPU.sizes)


def test_a_step_budget_keeps_the_preset_shape():
    assert candidates(steps=500, time_budget=None) == []
    assert candidates(steps=500) == []  # steps and time: the steps may end it first, and have no clock to fit


def test_repeated_passes_count_less_and_less():
    unique = 1_000_000
    assert sizing.effective_tokens(600_000, unique, 5.0) == 600_000
    gains = [sizing.effective_tokens(unique * passes, unique, 5.0) for passes in (1, 2, 4, 8, 64)]
    assert all(later > earlier for earlier, later in zip(gains, gains[1:]))
    assert gains[-1] < unique * 6  # never more than U (1 + R*)


TINY_SIZES = ((16, 4), (32, 4))


@pytest.fixture
def small_cpu_preset(monkeypatch):
    """The cpu preset with candidates small enough to train in a test."""
    preset = Preset(
        ModelConfig(),
        dataclasses.replace(TrainConfig(), warmup=2, eval_tokens=2000, eval_every=10**6),
        sizes=TINY_SIZES,
    )
    monkeypatch.setitem(PRESETS, "cpu", preset)
    # Paces as a real probe measures them (test_the_probe_trains_as_the_run_will), without its seconds.
    monkeypatch.setattr(sizing, "pace", paced({16: 20_000.0, 32: 9_000.0}))
    return monkeypatch


def test_the_probe_trains_as_the_run_will_and_reports_tokens_per_second(char_corpus):
    model = ModelConfig(embed=16, hidden=16, layers=1, vocab_size=char_corpus.vocab_size)
    train = TrainConfig(batch_size=4, seq_len=16)
    assert sizing.pace(model, train, char_corpus.tokens("train")) > 0


def test_train_with_a_time_budget_says_and_records_the_shape_it_chose(run_cli, text_file, tmp_path, small_cpu_preset):
    small_cpu_preset.setattr(sizing, "MIN_PROBED_BUDGET", 1.0)  # the seconds a test can spare are probed
    assert run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "notes").exit_code == 0
    result = run_cli("train", "--corpus", "notes", "--preset", "cpu", "--time", "2", "--plain", "--name", "clock")
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("sized for the clock: ")]
    config = RunFolder(tmp_path / "checkpoints" / "clock").config()
    chosen = config["sizing"]["chosen"]
    assert line.startswith(f"sized for the clock: 2x{chosen['width']}, batch {chosen['batch_size']}: ")
    assert (config["model"]["hidden"], config["model"]["embed"]) == (chosen["width"], chosen["width"])
    assert config["train"]["batch_size"] == chosen["batch_size"]
    assert config["sizing"]["time_budget"] == 2.0
    assert config["train"]["time_budget"] == pytest.approx(2.0 - config["sizing"]["probe_seconds"])
    # A resumed run keeps its shape and the record of why; its budget a second past what a loaded machine spent.
    spent = RunFolder(tmp_path / "checkpoints" / "clock").seconds_at(10**9)  # the seconds of its last step
    result = run_cli("train", "--resume", "clock", "--time", f"{spent + 1:.1f}", "--plain")
    assert result.exit_code == 0, result.output
    assert "sized for the clock" not in result.output
    assert json.loads((tmp_path / "checkpoints" / "clock" / "config.json").read_text())["sizing"] == config["sizing"]


def test_train_with_a_budget_too_short_to_probe_says_so_and_records_why(run_cli, text_file, tmp_path, small_cpu_preset):
    assert run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "notes").exit_code == 0
    result = run_cli("train", "--corpus", "notes", "--preset", "cpu", "--time", "1", "--plain", "--name", "quick")
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("sized for the clock: ")]
    assert line.startswith("sized for the clock: 2x16, batch 4, the smallest candidate, not probed: 1 s is too short")
    config = RunFolder(tmp_path / "checkpoints" / "quick").config()
    assert config["model"]["hidden"] == 16 and config["train"]["time_budget"] == 1.0
    assert config["sizing"]["chosen"]["tokens_per_s"] is None and config["sizing"]["options"] == []


def test_a_named_width_or_a_step_budget_trains_the_shape_asked_for(run_cli, text_file, tmp_path, small_cpu_preset):
    assert run_cli("prepare", "--dataset", str(text_file), "--tokenizer", "char", "--name", "notes").exit_code == 0
    for name, options in (("wide", ("--time", "1", "--hidden", "24")), ("steps", ("--steps", "3"))):
        result = run_cli("train", "--corpus", "notes", "--preset", "cpu", *options, "--plain", "--name", name)
        assert result.exit_code == 0, result.output
        assert "sized for the clock" not in result.output
        config = RunFolder(tmp_path / "checkpoints" / name).config()
        assert config["sizing"] is None
        assert config["model"]["hidden"] == (24 if name == "wide" else 512)


def test_the_benchmark_fit_recovers_the_coefficients_its_runs_were_drawn_from():
    from benchmarks import sizing as runs

    truth = sizing.LossFit(a=0.3, alpha=0.5, b=0.4, beta=0.35, repeats=5.0, passes=math.inf)
    rows = []
    for corpus, floor, unique in (("a", 1.2, 1_000_000), ("b", 1.9, 400_000)):
        for width in (256, 384, 512):
            model = dataclasses.replace(CPU.model, hidden=width, embed=width, vocab_size=100)
            for tokens in (5e5, 1e6, 2e6, 4e6, 8e6):
                bpc = floor + truth.excess(sizing.recurrent_parameters(model), tokens, unique)
                rows.append(
                    {
                        "corpus": corpus,
                        "tokenizer": "unigram 100",
                        "model": model.to_dict(),
                        "tokens": tokens,
                        "train_tokens": unique,
                        "val_bpc": bpc,
                    }
                )
    fitted = runs.fit(rows)
    assert (fitted["alpha"], fitted["beta"], fitted["repeats"]) == (0.5, 0.35, 5.0)
    assert fitted["a"] == pytest.approx(0.3, rel=1e-3) and fitted["b"] == pytest.approx(0.4, rel=1e-3)
    assert fitted["offsets"] == pytest.approx({"a unigram 100": 1.2, "b unigram 100": 1.9}, rel=1e-3)


def test_the_shipped_rule_is_the_fit_of_the_stored_runs_and_each_coefficient_is_inside_its_grid_or_on_its_bound():
    from benchmarks import sizing as runs

    fits = {row["family"]: row for row in runs.fit_file(Path(runs.__file__).with_name("sizing_runs.jsonl"), None)}
    for family, rule in sizing.FITS.items():
        fitted = fits[family]
        assert fitted["clipped"] == []
        assert (rule.alpha, rule.beta, rule.repeats) == (fitted["alpha"], fitted["beta"], fitted["repeats"])
        assert (rule.a, rule.b) == pytest.approx((fitted["a"], fitted["b"]), rel=1e-3)
        assert rule.passes == pytest.approx(fitted["passes"], abs=0.01)


def test_a_grid_that_stops_short_of_the_bounds_says_which_coefficients_it_clipped(monkeypatch):
    from benchmarks import sizing as runs

    monkeypatch.setattr(runs, "ALPHAS", np.round(np.arange(0.05, 1.51, 0.05), 2))  # the grid before 2026-12-07
    path = Path(runs.__file__).with_name("sizing_runs.jsonl")
    assert {row["family"]: row["clipped"] for row in runs.fit_file(path, None)} == {
        "char": ["alpha"],
        "subword": ["alpha"],
    }
