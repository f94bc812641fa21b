"""`rnngen complete` and `rnngen chat`: options, and how completions are shown."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from click.core import ParameterSource

from rnngen.cli.common import Paths, echo_json, pass_paths
from rnngen.config import DEVICES, SampleConfig
from rnngen.data.tokenizer import utf8_safe


def sampling_options(command):
    """The options shared by `complete` and `chat`: which model, and how tokens are drawn."""
    options = [
        click.option(
            "--checkpoint",
            help="A run folder or name, a .safetensors file, or hf:USER/NAME[@REVISION] from "
            "the Hugging Face Hub. [default: the latest run's best]",
        ),
        click.option(
            "--max-tokens",
            type=click.IntRange(min=1),
            default=SampleConfig.max_tokens,
            show_default=True,
            help="Tokens to generate.",
        ),
        click.option(
            "--temperature",
            type=click.FloatRange(min=0),
            default=SampleConfig.temperature,
            show_default=True,
            help="Softmax temperature; 0 is greedy decoding.",
        ),
        click.option(
            "--top-k",
            type=click.IntRange(min=0),
            default=SampleConfig.top_k,
            show_default=True,
            help="Sample among the k most likely tokens only; 0 is no limit.",
        ),
        click.option(
            "--top-p",
            type=click.FloatRange(0, 1, min_open=True),
            default=SampleConfig.top_p,
            show_default=True,
            help="Sample among the most likely tokens that make up this much probability (nucleus).",
        ),
        click.option(
            "--repetition-penalty",
            type=click.FloatRange(min=0, min_open=True),
            default=SampleConfig.repetition_penalty,
            show_default=True,
            help="Divide the logits of tokens already present (CTRL); 1 is off.",
        ),
        click.option(
            "--seed", type=int, help="Seed for reproducible samples; sample i of a prompt is drawn with seed + i."
        ),
        click.option("--stop", multiple=True, help="End the completion before this string (repeatable)."),
        click.option(
            "--device", type=click.Choice(DEVICES), default="cpu", show_default=True, help="Where to run the model."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# Samples of one prompt are kept until they are shown side by side: a bound far above what a table can show.
MAX_SAMPLES = 10_000
# Sampling options that a beam search, deterministic and ranking whole texts, has no use for.
NOT_FOR_BEAMS = (
    "num_samples",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "seed",
    "show_probs",
    "top_alternatives",
)

# The bound on a completion that runs to the end of its document: far above a line or a paragraph,
# it only stops a model that never writes end-of-text.
UNTIL_END_MAX_TOKENS = 2000


@click.command()
@click.argument("prompt", required=False)
@sampling_options
@click.option(
    "--num-samples",
    type=click.IntRange(1, MAX_SAMPLES),
    default=1,
    show_default=True,
    help="Completions per prompt.",
)
@click.option(
    "--until-end/--no-until-end",
    default=None,
    help=f"Write each completion to the end of its document (the model's end-of-text token); --max-tokens "
    f"is then only a bound, {UNTIL_END_MAX_TOKENS} unless given. [default: on for a corpus prepared "
    f"with --documents lines, where each sample is one new line]",
)
@click.option(
    "--beam",
    type=click.IntRange(min=1),
    help="Deterministic beam search with this many beams (at most the vocabulary's size); --stop cuts each beam, "
    "the sampling options do not apply.",
)
@click.option(
    "--length-penalty",
    type=float,
    default=1.0,
    show_default=True,
    help="With --beam: rank by logprob / ((5 + length) / 6) ** penalty; 0 ranks by logprob alone.",
)
@click.option("--show-probs", is_flag=True, help="Colour each token by the probability the model gave it.")
@click.option(
    "--top-alternatives",
    type=click.IntRange(min=1),
    help="Also list, for each token, the K most likely tokens with their probabilities.",
)
@click.option("--plain", is_flag=True, help="Only the completion, no styling (the default when piped).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per completion.")
@pass_paths
def complete(
    paths: Paths,
    prompt: str | None,
    checkpoint: str | None,
    device: str,
    num_samples: int,
    until_end: bool | None,
    beam: int | None,
    length_penalty: float,
    show_probs: bool,
    top_alternatives: int | None,
    plain: bool,
    as_json: bool,
    **sampling: Any,
) -> None:
    """Complete PROMPT with a trained model; `-` reads prompts from stdin, one per line.

    Without PROMPT on a terminal, opens an interactive session (as `rnngen chat`).

    \b
    rnngen complete "Studying Deep Learning is really"
    rnngen complete "The function" --temperature 0 --max-tokens 50
    rnngen complete "Returns" --top-p 0.9 --num-samples 3 --seed 1 --stop "."
    rnngen complete "The gradient" --beam 4 --max-tokens 30
    rnngen complete "The gradient" --show-probs --top-alternatives 3
    printf 'First prompt\\nSecond prompt\\n' | rnngen complete - --json
    rnngen complete "" --num-samples 20 --checkpoint names-gru   # a --documents lines corpus: 20 new lines
    """
    _one_blas_thread(device)
    from rnngen.cli.display import out

    if prompt is None:
        if sys.stdin.isatty() and out.is_terminal:
            return _chat(paths, checkpoint, device, False, sampling)
        raise click.UsageError('give a PROMPT to complete ("" for none), or - to read prompts from stdin')
    context = click.get_current_context()
    given = [name for name in NOT_FOR_BEAMS if context.get_parameter_source(name) != ParameterSource.DEFAULT]
    if beam and given:
        from rnngen.errors import RnngenError, param

        raise RnngenError(
            f"{param('beams')} searches deterministically for the most likely texts: drop "
            f"{', '.join(param(name) for name in given)} (they are for sampling)"
        )
    # A byte that is not UTF-8 in an argument comes as a lone surrogate: shown and written as U+FFFD.
    prompts, skipped = _stdin_prompts() if prompt == "-" else ([utf8_safe(prompt)], [])
    from rnngen.api import sample_config
    from rnngen.generation.loading import load_completer

    completer, run, _ = load_completer(checkpoint, paths.checkpoints, device)
    if until_end is None:
        until_end = run.documents() == "lines"
    max_tokens_given = context.get_parameter_source("max_tokens") != ParameterSource.DEFAULT
    if until_end and not max_tokens_given:
        sampling["max_tokens"] = UNTIL_END_MAX_TOKENS  # completions still end at end-of-text, as always
    cfg = sample_config(**sampling)
    styled = not (plain or as_json) and out.is_terminal
    for prompt_text in prompts:
        if beam:
            _show_beams(completer, prompt_text, beam, cfg, length_penalty, styled, as_json)
        else:
            _show_samples(completer, prompt_text, cfg, num_samples, show_probs, top_alternatives or 0, styled, as_json)
    if skipped:  # the other lines are completed first
        from rnngen.errors import RnngenError

        raise RnngenError(f"{'; '.join(skipped)}: skipped; convert it first, e.g. with iconv -f latin1 -t utf-8")


def _stdin_prompts() -> tuple[list[str], list[str]]:
    """Prompts from stdin, one a line, and a note for each line that is not UTF-8 (skipped, named by its number)."""
    prompts, skipped = [], []
    for number, line in enumerate(sys.stdin.buffer, 1):
        try:
            prompts.append(line.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError as exc:
            skipped.append(f"line {number} of stdin is not UTF-8 text ({exc.reason} at byte {exc.start})")
    return prompts, skipped


def _show_beams(
    completer: Any, prompt: str, beams: int, cfg: SampleConfig, length_penalty: float, styled: bool, as_json: bool
) -> None:
    from rnngen.cli.display import beams_table, out

    found = completer.beam_search(prompt, beams, cfg.max_tokens, length_penalty, cfg.stop)
    if as_json:
        for rank, found_beam in enumerate(found):
            echo_json(
                {
                    "prompt": prompt,
                    "beam": rank,
                    "completion": found_beam.text,
                    "tokens": len(found_beam.tokens),
                    "logprob": found_beam.logprob,
                    "score": found_beam.score,
                }
            )
    elif styled and len(found) > 1:
        out.print(beams_table(prompt, found))
    else:
        click.echo(found[0].text)


def _show_samples(
    completer: Any,
    prompt: str,
    cfg: SampleConfig,
    num_samples: int,
    show_probs: bool,
    alternatives: int,
    styled: bool,
    as_json: bool,
) -> None:
    from rnngen.cli.display import (
        alternatives_table,
        out,
        probability_legend,
        probs_text,
        samples_table,
        visible,
    )
    from rnngen.generation.decoding import choice_seed

    streamed = styled and num_samples == 1 and not show_probs
    texts = []
    for sample in range(num_samples):
        # Sample i is drawn with seed + i, as choice i of the server's `n`: three samples, three completions.
        generator = completer.generator(choice_seed(cfg.seed, sample))
        completion = completer.complete(prompt, cfg, generator, alternatives=alternatives)
        if as_json:
            row = {
                "prompt": prompt,
                "sample": sample,
                "completion": completion.text(),
                "tokens": len(completion.tokens),
                "stop_reason": completion.reason,
            }
            if show_probs or alternatives:
                row["steps"] = [
                    {
                        "token": step.text,
                        "prob": step.prob,
                        **({"alternatives": step.alternatives} if alternatives else {}),
                    }
                    for step in completion.steps
                ]
            echo_json(row)
        elif streamed:
            out.print(visible(prompt), style="bold", end="", markup=False)
            for piece in completion:
                out.print(visible(piece), style="cyan", end="", markup=False)
            out.print()
        elif show_probs or alternatives:
            completion.text()
            out.print(
                probs_text(prompt, completion.steps)
                if show_probs
                else visible(prompt + "".join(step.text for step in completion.steps)),
                markup=False,
            )
            if show_probs:
                out.print(probability_legend())
            if alternatives:
                out.print(alternatives_table(completion.steps))
        elif styled:
            texts.append(completion.text())
        else:
            for piece in completion:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
    if texts:
        out.print(samples_table(prompt, texts))


@click.command()
@sampling_options
@click.option(
    "--keep/--no-keep",
    default=False,
    show_default=True,
    help="Carry the model's state from one turn to the next (toggle with /keep).",
)
@pass_paths
def chat(paths: Paths, checkpoint: str | None, device: str, keep: bool, **sampling: Any) -> None:
    """An interactive session: the model loads once, each line you type is completed.

    \b
    /temperature 0.7, /top-k 20, /top-p 0.9, /max-tokens 100, /repetition-penalty 1.2, /seed 1
    /keep (a running text across turns), /reset, /settings, /help, /quit (or Ctrl-D)
    Ctrl-C stops the completion being written, not the session; the arrow keys recall earlier lines.
    """
    _chat(paths, checkpoint, device, keep, sampling)


def _chat(paths: Paths, checkpoint: str | None, device: str, keep: bool, sampling: dict[str, Any]) -> None:
    _one_blas_thread(device)
    from rnngen.cli.chat import ChatSession
    from rnngen.cli.display import out

    if sys.stdin.isatty():
        try:
            import readline  # noqa: F401  (gives input() line editing and history with the arrow keys)
        except ImportError:
            pass  # Windows' Python has no readline: lines are still read, without history
    from rnngen.api import sample_config
    from rnngen.generation.loading import load_completer

    completer = load_completer(checkpoint, paths.checkpoints, device).completer
    ChatSession(completer, sample_config(**sampling), out, keep=keep).run()


def _one_blas_thread(device_name: str) -> None:
    """On the CPU, let NumPy's BLAS use one thread; call before anything imports NumPy.

    Batch-1 decoding multiplies by a few MB of weights per token: too little to share among threads.
    On 2 cores that also run other work, OpenBLAS's threads waiting on each other made a step of a
    2x384 LSTM 10x slower (2.7 ms against 0.25 ms with one thread). OpenBLAS reads the
    variable once, when NumPy loads; a value the user set wins.
    """
    if device_name == "cpu":
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
