"""What the user sees: rich progress, live training metrics and summary tables.

Progress and diagnostics go to stderr, results to stdout, so `rnngen complete ... > out.txt` holds
only the completion. Without a terminal (or with --plain) rich prints plain lines instead.
"""

from __future__ import annotations

import errno
import re
import time
from typing import Any

from rich.console import Console, ConsoleOptions
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from rnngen.data.tokenizer import utf8_safe
from rnngen.lab.verdicts import AT_BASELINE, NOT_LEARNED, PARTLY, SOLVED, WORSE
from rnngen.training.events import (
    Evaluated,
    Event,
    Finished,
    Logged,
    Notice,
    Prepared,
    Preparing,
    Sampled,
    Sized,
    Started,
)


class _Console(Console):
    """rich's Console, but a closed output is left to the command line's one handler (`rnngen.cli.main`)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(errno.EPIPE, "the output was closed")


out = _Console(highlight=False)
err = _Console(stderr=True, highlight=False)

# Control characters but newline and tab (C1 included), line and paragraph separators and the bidirectional
# overrides: text a model learnt, or a prompt, must not move the cursor, retitle the window, clear the screen
# or reorder what the terminal shows.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """`text` as a terminal may show it: control characters as `\\xNN` (`\\uNNNN`), bytes that were not UTF-8
    as U+FFFD."""
    return _CONTROL.sub(lambda match: _escaped(ord(match.group())), utf8_safe(text))


def _escaped(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def human(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.4g}" if isinstance(n, float) else str(n)


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class _Live:
    """A rich Progress that runs only on a terminal and without --plain (the subclass builds it)."""

    progress: Progress

    def __init__(self, plain: bool):
        self.plain = plain or not err.is_terminal

    def __enter__(self):
        if not self.plain:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.plain:
            self.progress.stop()


class PrepareProgress(_Live):
    """Renders `rnngen.data.preparing.prepare` progress: one line per stage, with counts and rates."""

    LABELS = {
        "load": "loading the dataset",
        "tokenizer": "training the tokenizer",
        "encode": "encoding",
        "write": "writing",
    }

    def __init__(self, plain: bool):
        super().__init__(plain)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=err,
        )
        self.tasks: dict[str, TaskID] = {}
        self.started: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage not in self.tasks:
            for other in self.tasks.values():
                self.progress.update(other, completed=1, total=1)
            self.started[stage] = time.perf_counter()
            self.tasks[stage] = self.progress.add_task(self.LABELS[stage], total=None, detail="")
            if self.plain:
                err.print(f"{self.LABELS[stage]}...")
        detail = ""
        if stage == "encode":
            rate = done / max(time.perf_counter() - self.started[stage], 1e-9)
            detail = f"{human(done)} characters, {rate / 1e6:.2f} MB/s"
        self.progress.update(self.tasks[stage], completed=done, total=total, detail=detail)


class EvaluateProgress(_Live):
    """Renders `rnngen.evaluate` progress: a live bar; plain (--json, no terminal), a line on stderr every
    LINE_SECONDS and one at the end when there were any, so that stdout holds only the result and a short
    evaluation prints nothing else."""

    LINE_SECONDS = 5.0

    def __init__(self, plain: bool):
        super().__init__(plain)
        self.progress = Progress(
            "evaluating", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=err
        )
        self.task = self.progress.add_task("evaluate", total=None)
        self.started = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.plain:
            self.progress.update(self.task, completed=done, total=total)
            return
        now = time.monotonic()
        if now - self.last >= self.LINE_SECONDS or (done == total and self.last > self.started):
            self.last = now
            err.print(f"evaluated {done:,} of {total:,} tokens ({done / total:.0%}, {now - self.started:.0f} s)")


def corpus_table(meta: dict[str, Any], reused: bool) -> Table:
    """The summary of one prepared corpus."""
    splits = meta["splits"]
    table = Table(
        title=f"corpus {meta['name']}" + (" (reused: pass --force to rebuild)" if reused else ""), title_justify="left"
    )
    for column in ("split", "documents", "characters", "tokens", "tokens/char"):
        table.add_column(column, justify="right" if column != "split" else "left")
    for split, stats in splits.items():
        table.add_row(
            split,
            # The train part of a single text cut by characters ends no document of its own.
            human(stats["documents"]) if stats["documents"] or not stats["characters"] else "part of 1",
            human(stats["characters"]),
            human(stats["tokens"]),
            f"{stats['tokens'] / max(stats['characters'], 1):.3f}",
        )
    tok = meta["tokenizer"]
    unknown = {split: stats["unknown_bytes"] for split, stats in splits.items()}
    table.caption = (
        f"{source_label(meta['source'])}; "
        f"{tok['type']} tokenizer, vocabulary {tok['vocab_size']}, {meta['dtype']}; validation: "
        f"{meta['validation_from']}; built in {duration(meta['seconds'])}"
        + (
            "; outside the vocabulary (unknown pieces, 8 bits per byte in bits/char): "
            + ", ".join(f"{split} {human(count)} bytes" for split, count in unknown.items() if count)
            if any(unknown.values())
            else ""
        )
    )
    return table


def source_label(source: dict[str, Any]) -> str:
    """The dataset, with how much of the raw text the embedded corpus kept as prose."""
    label = str(source["dataset"])
    if source.get("raw_docstring_chars"):
        label += (
            f" (prose: {human(source['kept_chars'])} of {human(source['raw_docstring_chars'])} docstring "
            f"characters, {source['kept_chars'] / source['raw_docstring_chars']:.0%})"
        )
    return label


def corpora_table(metas: list[dict[str, Any]]) -> Table:
    """`rnngen corpora`: one row per corpus, its name never cut (it is what `--corpus` takes)."""
    table = Table(title="prepared corpora", title_justify="left")
    for column in ("name", "source", "tokenizer", "train tokens", "val tokens", "tokens/char", "created"):
        table.add_column(column, no_wrap=column == "name")
    for meta in metas:
        train = meta["splits"]["train"]
        table.add_row(
            meta["name"],
            source_label(meta["source"]),
            f"{meta['tokenizer']['type']} {meta['tokenizer']['vocab_size']}",
            human(train["tokens"]),
            human(meta["splits"]["val"]["tokens"]),
            f"{train['tokens'] / max(train['characters'], 1):.3f}",
            meta.get("created", "")[:16].replace("T", " "),
        )
    return table


class TrainDisplay(_Live):
    """Renders training events: a live progress line with the figures people watch, then a summary."""

    def __init__(self, plain: bool):
        super().__init__(plain)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[step]}"),
            TextColumn("[cyan]{task.fields[speed]}"),
            TextColumn("loss [yellow]{task.fields[loss]}"),
            TextColumn("val [green]{task.fields[val]}"),
            TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[clip]}"),
            TimeRemainingColumn(),
            console=err,
        )
        self.task: TaskID | None = None
        self.val = "-"
        self.last_plain = 0.0
        self.preparing: PrepareProgress | None = None  # while the embedded corpus is prepared for the run
        self.live = False

    def __enter__(self):
        return self  # the live bar starts with training: preparing the corpus shows bars of its own first

    def __exit__(self, *exc: Any) -> None:
        if self.preparing is not None:
            self.preparing.__exit__(*exc)
        if self.live:
            self.progress.stop()

    def __call__(self, event: Event) -> None:
        handler = {
            Preparing: self._on_preparing,
            Prepared: self._on_prepared,
            Notice: self._on_notice,
            Sized: self._on_sized,
            Started: self._on_start,
            Logged: self._on_train,
            Evaluated: self._on_eval,
            Sampled: self._on_sample,
            Finished: self._on_done,
        }.get(type(event))
        if handler is not None:  # a Saved line per checkpoint would drown the figures: the summary names the files
            handler(event)

    def _on_preparing(self, event: Preparing) -> None:
        if self.preparing is None:
            self.preparing = PrepareProgress(self.plain).__enter__()
        self.preparing(event.stage, event.done, event.total)

    def _on_prepared(self, event: Prepared) -> None:
        if self.preparing is not None:
            self.preparing.__exit__(None, None, None)
            self.preparing = None
        out.print(corpus_table(event.meta, False))

    def _on_notice(self, event: Notice) -> None:
        err.print(visible(event.text), markup=False, soft_wrap=True)  # it may quote a prompt

    def _on_sized(self, event: Sized) -> None:
        err.print(event.line, markup=False, soft_wrap=True)

    def _on_start(self, event: Started) -> None:
        budget = " or ".join(
            filter(
                None,
                [
                    f"{event.steps} steps" if event.steps else "",
                    f"{event.time_budget:g} s" if event.time_budget else "",
                ],
            )
        )
        processes = f" x {event.processes} processes, global batch {event.rows} rows" if event.processes > 1 else ""
        err.print(
            f"training on [bold]{event.device}[/]{processes}: {human(event.parameters)} parameters, "
            f"{human(event.tokens_per_step)} tokens per step, {human(event.train_tokens)} training tokens, "
            f"budget {budget}" + (f", resuming at step {event.step}" if event.step else "")
        )
        err.print(event.arithmetic, markup=False, soft_wrap=True)
        err.print(f"run folder: {event.run}")
        if not self.plain and not self.live:
            self.progress.start()
            self.live = True
        self.task = self.progress.add_task("train", total=1000, step="", speed="", loss="-", val="-", lr="", clip="")

    def _on_train(self, event: Logged) -> None:
        fields = {
            "step": f"step {event.step}",
            "speed": f"{human(event.tokens_per_s)} tok/s",
            "loss": f"{event.loss:.3f}",
            "val": self.val,
            "lr": f"{event.lr:.2e}",
            "clip": f"|g| {event.grad_norm:.2f}" + (f" clipped {event.clipped:.0%}" if event.clipped else ""),
        }
        self.progress.update(self.task, completed=1000 * event.progress, **fields)
        if self.plain and time.monotonic() - self.last_plain >= 10:
            self.last_plain = time.monotonic()
            err.print(
                f"step {event.step}  {fields['speed']}  loss {fields['loss']}  lr {fields['lr']}  "
                f"{fields['clip']}  ({event.progress:.0%})"
            )

    def _on_eval(self, event: Evaluated) -> None:
        self.val = f"{event.val_loss:.3f} ppl {event.val_ppl:.1f} {event.val_bpc:.3f} bpc"
        if self.plain:
            err.print(
                f"step {event.step}  validation loss {self.val}"
                + (f" (first {human(event.val_tokens)} tokens)" if event.bounded else "")
            )

    def _on_sample(self, event: Sampled) -> None:
        # One line per evaluation, above the live bar: the run's samples read from noise to words.
        line = Text(f"step {event.step}  sample: ")
        line.append_text(sample_text(event.prompt, event.text))
        err.print(line, soft_wrap=self.plain)

    def _on_done(self, event: Finished) -> None:
        if not self.plain and self.task is not None:
            self.progress.update(self.task, completed=1000)
        if event.stopped:
            err.print(event.stopped, style="bold", markup=False, soft_wrap=True)


def sample_text(prompt: str, completion: str) -> Text:
    """A sample on one line (newlines shown as \\n), the prompt in brackets and dimmed, the completion bold."""

    def one_line(text: str) -> str:
        return visible(text.replace("\\", "\\\\").replace("\n", "\\n"))

    return Text.assemble((f"[{one_line(prompt)}]", "dim"), (one_line(completion), "bold"))


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="training summary", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("run", summary["run"]),
        ("steps", str(summary["steps"])),
        ("training time", duration(summary["seconds"])),
        ("tokens", human(summary["tokens"])),
        ("tokens/s", human(summary["tokens_per_s"])),
        (
            "final validation",
            f"loss {summary['val_loss']:.4f}, ppl {summary['val_ppl']:.2f}, "
            f"{summary['val_bpc']:.4f} bits/char"
            + (f" (first {human(summary['val_tokens'])} tokens)" if summary["bounded"] else ""),
        ),
        ("best validation", f"loss {summary['best_val_loss']:.4f}, {summary['best_val_bpc']:.4f} bits/char"),
    ]
    if summary.get("stopped"):
        rows.append(("stopped", Text(summary["stopped"])))
    if "sample" in summary:
        rows.append(("last sample", sample_text(summary["sample_prompt"], summary["sample"])))
    for row in rows:
        table.add_row(*row)
    return table


RUN_COLUMNS = {"run": "run", "model": "model", "corpus": "corpus", "steps": "steps", "best": "best val bpc"}
LISTED = {**RUN_COLUMNS, "size_bytes": "size", "updated": "updated"}
COMPARED = {**RUN_COLUMNS, "last": "last val bpc", "seconds": "seconds", "tokens_per_s": "tokens/s"}
# Where a terminal is too narrow for every column, these are left out first, in this order; the run's name, the
# one a user types next, is never cut.
LEAST_USED = ("updated", "size_bytes", "tokens_per_s", "seconds", "corpus", "steps", "last", "best", "model")


def runs_table(rows: list[dict[str, Any]], columns: dict[str, str] = LISTED, title: str = "runs") -> RunsTable:
    """`rnngen runs`: one row per run; `columns` maps a row's keys to their headings."""
    return RunsTable(rows, columns, title)


class RunsTable:
    """The runs as a table fitted to the width it is drawn at: the run names whole, then as many columns as fit
    without cutting a word (`LEAST_USED` go first; `--json` has them all). A damaged run's row says so, and the
    caption says what is damaged and how to fix it."""

    def __init__(self, rows: list[dict[str, Any]], columns: dict[str, str], title: str):
        self.rows, self.columns, self.title = rows, columns, title

    def __rich_console__(self, console: Console, options: ConsoleOptions):
        keys = list(self.columns)
        for key in LEAST_USED:
            if self._narrowest(keys) <= options.max_width:
                break
            if key in keys:
                keys.remove(key)
        yield self._table(keys)

    def _narrowest(self, keys: list[str]) -> int:
        """The table's width with each column as narrow as its longest word and the run names whole: the words,
        then each column's padding and border (3) and the last border (1)."""
        width = 1
        for key in keys:
            texts = [self.columns[key], *(self._cell(row, key) for row in self.rows)]
            words = texts if key == "run" else [word for text in texts for word in text.split()]
            width += 3 + max(len(word) for word in words)
        return width

    def _table(self, keys: list[str]) -> Table:
        table = Table(title=self.title, title_justify="left", caption_justify="left")
        for key in keys:
            left = key in ("run", "model", "corpus", "updated")
            table.add_column(self.columns[key], justify="left" if left else "right", no_wrap=key == "run")
        for row in self.rows:
            table.add_row(*[Text(self._cell(row, key), "red" if row["damaged"] else "") for key in keys])
        notes = [f"{row['run']}: {row['damaged']}" for row in self.rows if row["damaged"]]
        left_out = [self.columns[key] for key in self.columns if key not in keys]
        if left_out:
            notes.append(f"left out for the terminal's width: {', '.join(left_out)} (--json has them)")
        table.caption = Text("\n".join(notes)) if notes else None  # Text: a path's brackets are no markup
        return table

    @staticmethod
    def _cell(row: dict[str, Any], key: str) -> str:
        """A figure as the table shows it: "-" where the run has none, "damaged" as a damaged run's model."""
        value = row[key]
        if key == "model" and row["damaged"]:
            return "damaged"
        if value is None:
            return "-"
        if key in ("best", "last"):
            return f"{value:.4f}"
        if key in ("seconds", "tokens_per_s"):
            return f"{value:.0f}"
        if key == "size_bytes":
            return f"{value / 1e6:.1f} MB"
        return str(value)


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], low: float, high: float, width: int = 32) -> str:
    """At most `width` characters (values sampled evenly) on a log scale between 10**low and 10**high."""
    import math

    step = max(1, math.ceil(len(values) / width))
    values = values[::step]
    span = max(high - low, 1e-9)
    chars = []
    for value in values:
        level = (math.log10(max(value, 1e-300)) - low) / span
        chars.append(SPARKS[min(len(SPARKS) - 1, max(0, int(level * len(SPARKS))))])
    return "".join(chars)


def gradient_table(profiles: list[Any], marks: list[int]) -> Table:
    """||dL_T/dh_t|| at chosen distances, the vanishing distance and the vanilla RNN's factors."""
    table = Table(title="||dL_T / dh_t|| by distance T - t (loss at the last step only)", title_justify="left")
    table.add_column("model")
    for mark in marks:
        table.add_column(f"d={mark}", justify="right")
    table.add_column("< 1e-3 at", justify="right")
    table.add_column("‖W_h‖₂", justify="right")
    table.add_column("1-tanh²", justify="right")
    for prof in profiles:
        vanish = prof.vanish_distance
        table.add_row(
            prof.label,
            *[f"{prof.loss_grad[m]:.1e}" for m in marks],
            f"d={vanish}" if vanish is not None else f"> {len(prof.loss_grad) - 1}",
            f"{prof.spectral_norm:.3f}" if prof.spectral_norm is not None else "-",
            f"{prof.tanh_slope:.3f}" if prof.tanh_slope is not None else "-",
        )
    return table


def gradient_sparklines(profiles: list[Any]) -> Table:
    """Both norms as sparklines against distance (left: d = 0), on one log scale per measure."""
    import math

    table = Table(title="log-scale profiles, distance 0 on the left", title_justify="left")
    table.add_column("model")
    table.add_column("||dL_T/dh_t||")
    table.add_column("||dh_T/dh_t||_F")
    scales = []
    for attr in ("loss_grad", "jacobian"):
        values = [v for prof in profiles for v in getattr(prof, attr) if v > 0]
        scales.append((math.log10(min(values)), math.log10(max(values))))
    for prof in profiles:
        table.add_row(prof.label, sparkline(prof.loss_grad, *scales[0]), sparkline(prof.jacobian, *scales[1]))
    return table


# Probability bands for --show-probs: (lower bound, style, label).
PROB_BANDS = [
    (0.5, "bold green", ">=50%"),
    (0.2, "green", "20-50%"),
    (0.05, "yellow", "5-20%"),
    (0.01, "dark_orange", "1-5%"),
    (0.0, "bold red", "<1%"),
]


def prob_style(prob: float) -> str:
    return next(style for low, style, _ in PROB_BANDS if prob >= low)


def probs_text(prompt: str, steps: list[Any]):
    """The prompt, then each generated token coloured by the probability the model gave it."""
    from rich.text import Text

    text = Text(visible(prompt), style="dim")
    for step in steps:
        text.append(visible(step.text), style=f"{prob_style(step.prob)} underline")
    return text


def probability_legend():
    from rich.text import Text

    legend = Text("p(token): ", style="dim")
    for _, style, label in PROB_BANDS:
        legend.append(f" {label} ", style=f"{style} reverse")
        legend.append(" ")
    return legend


def alternatives_table(steps: list[Any]) -> Table:
    """Per generated token: its probability and the most likely tokens at that step."""
    table = Table(title="what the model weighed at each step (softmax of the logits)", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("token")
    table.add_column("p", justify="right")
    table.add_column("most likely")
    for index, step in enumerate(steps, 1):
        table.add_row(
            str(index),
            repr(step.text),
            f"{step.prob:.3f}",
            "  ".join(f"{token!r} {prob:.3f}" for token, prob in step.alternatives),
            style=None if step.prob >= 0.05 else "dim",
        )
    return table


def samples_table(prompt: str, texts: list[str]) -> Table:
    """Several samples of one prompt side by side."""
    table = Table(title=visible(prompt), title_justify="left", show_lines=True)
    for index in range(len(texts)):
        table.add_column(f"sample {index + 1}")
    table.add_row(*map(visible, texts))
    return table


def beams_table(prompt: str, beams: list[Any]) -> Table:
    """Beam search results side by side, best first, with their scores."""
    table = Table(title=visible(prompt), title_justify="left", show_lines=True)
    for index, beam in enumerate(beams):
        table.add_column(f"beam {index + 1}\nscore {beam.score:.3f} (log p {beam.logprob:.2f})")
    table.add_row(*[visible(beam.text) for beam in beams])
    return table


VERDICT_STYLES = {SOLVED: "bold green", PARTLY: "yellow", AT_BASELINE: "red", WORSE: "red", NOT_LEARNED: "magenta"}


def verdict_text(verdict: str) -> Text:
    """A lab verdict, styled; "not learned in 400 steps" is shown as "not learned" (a table's steps column says N)."""
    name = next(name for name in VERDICT_STYLES if verdict.startswith(name))
    return Text(name, VERDICT_STYLES[name])


def lab_run_line(run: Any) -> Text:
    """One finished lab run, as progress: task, length, model, score, verdict, steps, seconds."""
    c = run.config
    return Text.assemble(
        (f"{c.task} {c.length:>4} {c.model:<9} seed {c.seed}: ", "dim"),
        f"{run.metric} {run.score:.4g} ",
        (run.verdict, verdict_text(run.verdict).style),
        (f"  {run.steps} steps, {run.seconds:.0f}s", "dim"),
    )


def lab_table(report: Any) -> Table:
    """A trained task's cells: model (and its gate initialisation) x length, the score beside the memoryless
    baseline, and the verdict."""
    unit = "pairs" if report.task == "recall" else "T"
    table = Table(
        title=f"{report.task}: {report.metric} on held-out sequences (mean over seeds)",
        title_justify="left",
        caption="not learned: still improving when its steps ran out",
        caption_justify="left",
        show_edge=False,  # fits 80 columns
    )
    metric = {"cross-entropy": "x-entropy"}.get(report.metric, report.metric)  # fits 80 columns
    for name in (unit, "model", "params", metric, "baseline", "verdict", "steps"):
        table.add_column(name, justify="left" if name in ("model", "verdict") else "right", no_wrap=True)
    for cell in report.cells:
        verdict = report.verdict(cell)
        table.add_row(
            str(cell.length),
            cell.label,  # the model and its gate initialisation: "lstm chrono"
            human(cell.runs[0].parameters),
            f"{cell.score:.4g}",
            f"{report.baseline(cell.length):.4g}",
            verdict_text(verdict),
            str(cell.steps),
        )
    return table


def speed_table(report: Any) -> Table:
    """Milliseconds per training step, case x length."""
    lengths = sorted({length for _, length in report.seconds})
    cases = list(dict.fromkeys(case for case, _ in report.seconds))
    title = f"ms per training step on {report.device} (batch {report.batch}, width {report.width})"
    table = Table(title=title, title_justify="left")
    table.add_column("computation")
    for length in lengths:
        table.add_column(f"T={length}", justify="right")
    for case in cases:
        table.add_row(case, *[f"{1000 * report.seconds[case, n]:.1f}" for n in lengths])
    return table
