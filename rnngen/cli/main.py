"""The `rnngen` group: global options, the command table, and how errors reach the user.

Each command lives in its own module, imported only when that command runs (click's lazy-group
pattern), so `rnngen --help` and `rnngen runs` never pay for torch or datasets. Errors a user can
fix are printed as one line; `--debug` shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from rnngen import __version__
from rnngen.cli.common import Paths
from rnngen.errors import RnngenError
from rnngen.interrupts import Terminated, sigterm_raises
from rnngen.store.locations import CHECKPOINTS_ENV, CORPORA_ENV, DEFAULT_CHECKPOINTS, DEFAULT_CORPORA
from rnngen.training.workers import keep_error

# name -> (module:attribute, the one-line help shown by `rnngen --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": (
        "rnngen.cli.prepare:prepare",
        "Turn a text dataset into a tokenizer and token arrays under corpora/NAME/.",
    ),
    "corpora": ("rnngen.cli.prepare:corpora", "List the prepared corpora."),
    "train": (
        "rnngen.cli.train:train_command",
        "Train a recurrent language model; checkpoints go to checkpoints/RUN/.",
    ),
    "runs": ("rnngen.cli.train:runs", "List training runs: model, corpus, steps, best validation bits per character."),
    "evaluate": (
        "rnngen.cli.evaluate:evaluate",
        "Loss, perplexity and bits per character of a checkpoint on a corpus split.",
    ),
    "complete": (
        "rnngen.cli.complete:complete",
        "Complete PROMPT with a trained model; `-` reads prompts from stdin, one per line.",
    ),
    "chat": (
        "rnngen.cli.complete:chat",
        "An interactive session: the model loads once, each line you type is completed.",
    ),
    "serve": (
        "rnngen.cli.serve:serve",
        "Serve models over an OpenAI-compatible HTTP API, with a web page at /.",
    ),
    "export": ("rnngen.cli.export:export", "Write a run's model as ONNX, or as a web page that runs it in a browser."),
    "push": (
        "rnngen.cli.push:push",
        "Upload a run (best checkpoint, config, tokenizer, model card) to the Hugging Face Hub.",
    ),
    "gradients": (
        "rnngen.cli.analysis:gradients",
        "Watch gradients vanish: ||dL_T/dh_t|| and ||dh_T/dh_t|| against the distance T - t.",
    ),
    "plot": (
        "rnngen.cli.analysis:plot",
        "Training and validation bits per character of RUNS, against steps and against time.",
    ),
    "lab": (
        "rnngen.cli.lab:lab",
        "Train the lecture's models on tasks that each probe one limit of recurrence, beside the baseline.",
    ),
}


# The exit code of a command whose output was closed (`rnngen runs | head -1`): 128 + SIGPIPE, what a shell reports
# for a Unix tool the closed pipe stopped (SIGPIPE is written out: Windows has no signal.SIGPIPE).
CLOSED_PIPE_EXIT = 128 + 13

# Library parameters whose flag is not their name with dashes.
FLAGS = {
    "time_budget": "--time",
    "kind": "--model",
    "checkpoints": "--checkpoints-dir",
    "corpora": "--corpora-dir",
    "alternatives": "--top-alternatives",
    "beams": "--beam",
    "lengths": "--length",
}


def flag(name: str) -> str:
    """The command-line flag of library parameter `name`: `batch_size` is `--batch-size`."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def output_closed() -> NoReturn:
    """Stop quietly, as Unix tools do, once the reader of the output went away. What stdout still buffers goes to
    /dev/null, so that flushing it at exit does not fail again (the recipe in Python's notes on SIGPIPE)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(CLOSED_PIPE_EXIT)


class Group(click.Group):
    """Loads a command's module when it is invoked, turns library errors into one line (exit 1),
    interruptions into their signal's exit code and a closed output into a quiet exit (141)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The listing needs only names and short help: no command module is imported for it.
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return super().main(*args, **kwargs)
            finally:
                sys.stdout.flush()  # a closed pipe shows here, not as Python's complaint at exit
        except BrokenPipeError:
            output_closed()

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except BrokenPipeError:  # `rnngen --help | ...`: before click's own handler, which exits with 1
            output_closed()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with sigterm_raises():
                return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            output_closed()
        except KeyboardInterrupt as exc:
            # Unwound to here, the command removed what it had made; the exit code is the signal's.
            terminated = isinstance(exc, Terminated)
            message = f"stopped by {exc.signal.name if terminated else 'SIGINT'}"
            if not keep_error(message):
                click.echo(message, err=True)
            ctx.exit(exc.exit_code if terminated else 128 + signal.SIGINT)
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            from rich.markup import escape

            from rnngen.cli.display import err

            code = getattr(exc, "exit_code", 1)
            if isinstance(exc, RnngenError):
                text = escape(exc.message(flag))
                message = f"[red]error:[/] {text}" if code == 1 else text
            else:
                message = escape(f"error: {type(exc).__name__}: {exc} (a bug? rerun with --debug for the traceback)")
            if not keep_error(message):  # a data-parallel worker's error is shown once, by its launcher
                err.print(message, soft_wrap=True)
            ctx.exit(code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.option(
    "--corpora-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CORPORA,
    envvar=CORPORA_ENV,
    show_default=True,
    show_envvar=True,
    help="Where prepared corpora live.",
)
@click.option(
    "--checkpoints-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CHECKPOINTS,
    envvar=CHECKPOINTS_ENV,
    show_default=True,
    show_envvar=True,
    help="Where training runs live.",
)
@click.version_option(__version__, prog_name="rnngen")
@click.pass_context
def cli(ctx: click.Context, debug: bool, corpora_dir: Path, checkpoints_dir: Path) -> None:
    """Train recurrent language models (RNN, LSTM, GRU) on a text corpus and complete prompts.

    \b
    rnngen train                                   # prepares the embedded corpus, trains ~3 min on a CPU
    rnngen complete "Studying Deep Learning is really"
    rnngen prepare --dataset notes.txt --tokenizer char --name notes
    """
    ctx.obj = Paths(corpora=corpora_dir, checkpoints=checkpoints_dir)


def main() -> None:
    """The console-script entry point."""
    cli(prog_name="rnngen")
