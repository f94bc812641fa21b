"""An interactive completion session: the model loads once, each line typed is completed.

Lines that start with `/` change the session: sampling settings in place (`/temperature 0.7`),
whether the model's state is kept from one turn to the next (`/keep`), `/reset`, `/help`, `/quit`.
Ctrl-C stops the completion being written, not the session; Ctrl-D or `/quit` leaves.

With `/keep` the turns and replies are one running text, held as a `TextState` (what `Model.read` gives): each
turn reads only its line, and after the reply the reply is read again the way a prompt is read, so that the next
turn writes what `rnngen complete` writes for the whole running text, and what `rnngen serve` writes for the same
messages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from rnngen.cli.display import visible
from rnngen.cli.main import flag
from rnngen.config import SampleConfig
from rnngen.errors import RnngenError
from rnngen.generation.completer import Completer
from rnngen.generation.read_state import TextState
from rnngen.interrupts import Terminated

# command -> (SampleConfig field, parser, help)
SETTINGS: dict[str, tuple[str, Callable[[str], object], str]] = {
    "temperature": ("temperature", float, "softmax temperature, 0 is greedy"),
    "top-k": ("top_k", int, "sample among the k most likely tokens, 0 is no limit"),
    "top-p": ("top_p", float, "nucleus: the most likely tokens that make up this probability"),
    "max-tokens": ("max_tokens", int, "tokens per completion"),
    "repetition-penalty": ("repetition_penalty", float, "divide the logits of tokens already seen, 1 is off"),
}
HELP = {
    **{f"/{name} VALUE": text for name, (_, _, text) in SETTINGS.items()},
    "/seed N": "restart the random numbers from seed N",
    "/keep [on|off]": "carry the model's state from one turn to the next (a running text)",
    "/reset": "forget the running text: the next turn starts a new document",
    "/settings": "show the current settings",
    "/help": "this list",
    "/quit": "leave (or Ctrl-D)",
}


def as_command(exc: RnngenError) -> str:
    """The error's message with each setting it names written as its chat command: `--top-p` as `/top-p`."""
    return exc.message(flag).replace("--", "/")


class ChatSession:
    """The read-complete loop. `read` defaults to the console's input(); tests and scripts pass their own."""

    def __init__(
        self,
        completer: Completer,
        cfg: SampleConfig,
        console: Console,
        read: Callable[[str], str] | None = None,
        keep: bool = False,
    ):
        self.completer, self.cfg, self.console, self.keep = completer, cfg, console, keep
        self.read = read or console.input  # input() with readline history, prompt drawn by rich
        self.generator = completer.generator(cfg.seed)
        # The running text read (its text, tokens and the model after it), with /keep.
        self.memory: TextState | None = None

    def run(self) -> None:
        """Read lines until Ctrl-D or /quit."""
        self.console.print("[dim]type a prompt; /help lists the commands; Ctrl-D or /quit leaves[/]")
        while True:
            try:
                line = self.read("> ")
            except EOFError:
                break
            except Terminated:
                raise
            except KeyboardInterrupt:
                self.console.print()
                continue
            if line.startswith("/"):
                if not self.command(line[1:].split()):
                    break
            else:
                self.turn(line)

    def turn(self, prompt: str) -> None:
        """Complete one line, streaming; Ctrl-C stops this completion only."""
        completion = self.completer.complete(prompt, self.cfg, self.generator, after=self.memory if self.keep else None)
        try:
            for piece in completion:
                self.console.print(visible(piece), style="cyan", end="", markup=False, highlight=False)
        except Terminated:
            raise
        except KeyboardInterrupt:
            self.console.print(" [dim]\\[stopped][/]", end="")
        self.console.print()
        if self.keep:
            # After Ctrl-C too: the running text goes on with what was written until then.
            read = completion.prompt_state
            self.memory = self.completer.read(
                completion.written if read is not None else prompt, after=read if read is not None else self.memory
            )

    def command(self, words: list[str]) -> bool:
        """Run a /command; False means leave the session."""
        name, args = (words[0].lower(), words[1:]) if words else ("help", [])
        if name in ("quit", "exit", "q"):
            return False
        if name == "help":
            for usage, text in HELP.items():
                self.console.print(f"  [bold]{usage:<26}[/] {text}")
        elif name == "settings":
            settings = {command: getattr(self.cfg, field) for command, (field, _, _) in SETTINGS.items()}
            self.console.print(
                "  "
                + "  ".join(f"{key} {value}" for key, value in settings.items())
                + f"  keep {'on' if self.keep else 'off'}"
            )
        elif name == "reset":
            self.memory = None
            self.console.print("[dim]the next turn starts a new document[/]")
        elif name == "keep":
            self.keep = (args[0].lower() in ("on", "1", "yes")) if args else not self.keep
            if not self.keep:
                self.memory = None
            self.console.print(f"[dim]keep {'on: turns continue one text' if self.keep else 'off'}[/]")
        elif name == "seed" and len(args) == 1:
            self._seed(args[0])
        elif name in SETTINGS and len(args) == 1:
            self._set(name, args[0])
        else:
            self.console.print(f"[red]unknown command /{escape(' '.join(words))}[/]: /help lists the commands")
        return True

    def _seed(self, value: str) -> None:
        if not (value.isascii() and value.lstrip("-").isdigit()):  # "²".isdigit() is True, yet int() refuses it
            self.console.print(f"[red]/seed takes a whole number, not {escape(repr(value))}[/]")
            return
        try:
            self.cfg = dataclasses.replace(self.cfg, seed=int(value))
        except RnngenError as exc:
            self.console.print(f"[red]{escape(as_command(exc))}[/]")
            return
        self.generator = self.completer.generator(self.cfg.seed)
        self.console.print(f"[dim]seed {self.cfg.seed}[/]")

    def _set(self, name: str, value: str) -> None:
        field, parse, _ = SETTINGS[name]
        try:
            self.cfg = dataclasses.replace(self.cfg, **{field: parse(value)})
        except ValueError:
            self.console.print(f"[red]/{name} takes a number, not {escape(repr(value))}[/]")
            return
        except RnngenError as exc:
            self.console.print(f"[red]{escape(as_command(exc))}[/]")
            return
        self.console.print(f"[dim]{name} {getattr(self.cfg, field)}[/]")
