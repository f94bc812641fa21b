"""Completion: prime the prompt in one fused pass, then decode token by token with the carried state.

Each generated token costs one step of the recurrence whatever the length so far: the state is all
the model remembers. Prompts start after the end-of-text id, the state in which every training
document began, so an empty prompt generates from the start of a document. A corpus of a single
text (tiny shakespeare) never showed the model that id in training: its prompts start after a
newline from the zero state, the state every training stream started from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rnngen.config import SampleConfig
from rnngen.data.tokenizer import Tokenizer
from rnngen.generation.beam import Beam, beam_search
from rnngen.generation.sampling import choose, filter_logits, make_generator
from rnngen.generation.step_decoder import StepDecoder
from rnngen.models import RecurrentLM, State
from rnngen.training.checkpoint import load_model
from rnngen.training.runs import RunFolder


@dataclass
class Context:
    """What the model remembers after some text: the next-token logits and the recurrent state."""

    logits: torch.Tensor
    state: State


@dataclass
class TokenStep:
    """One generated token: its text, the probability the model gave it, and (when asked) the
    most likely alternatives at that step."""

    token: int
    text: str
    prob: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Completion:
    """One completion, streamed as text pieces; `steps`, `reason` and `context` are set once it is consumed."""

    pieces: Iterator[str]
    steps: list[TokenStep] = field(default_factory=list)
    reason: str = ""
    context: Context | None = None  # the model's state after the completion, to continue from

    @property
    def tokens(self) -> list[int]:
        return [step.token for step in self.steps]

    def __iter__(self) -> Iterator[str]:
        return self.pieces

    def text(self) -> str:
        return "".join(self.pieces)


class Completer:
    """Completes prompts with a trained model."""

    def __init__(self, model: RecurrentLM, tokenizer: Tokenizer, device: torch.device | str = "cpu",
                 start_with_eot: bool = True):
        self.model = model.eval()
        self.start = [tokenizer.eot_id] if start_with_eot else tokenizer.encode("\n")
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        # The fused layers serve length-1 steps well on a GPU; on the CPU the NumPy step is faster.
        # The scratch cells (Cho's GRU) and minGRU/minLSTM step through the model itself.
        self.decoder = StepDecoder(model) if self.device.type == "cpu" and StepDecoder.supports(model.config) else None

    @classmethod
    def from_checkpoint(cls, run: RunFolder, path: Path, device: torch.device | str = "cpu") -> "Completer":
        """A completer for checkpoint `path` of `run`; prompts start as that corpus's documents did."""
        model, tok, ckpt = load_model(run, path, device)
        return cls(model, tok, device, start_with_eot=ckpt.corpus.get("train_documents", 1) > 0)

    @torch.no_grad()
    def prime(self, prompt: str, context: Context | None = None) -> tuple[Context, list[int]]:
        """Run the prompt through the fused layers in one pass, from the start of a document or
        from `context`; returns the context after it and the prompt's ids."""
        ids = self.tokenizer.encode(prompt)
        if context is not None and not ids:
            return context, ids
        feed = ids if context is not None else self.start + ids
        logits, state = self.model(torch.tensor([feed], device=self.device), context.state if context else None)
        return Context(logits[0, -1], state), ids

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Feed one token per row (tokens [batch]): next-token logits [batch, vocab] and the new state."""
        if self.decoder is not None:
            return self.decoder.step(tokens.cpu(), state)
        logits, state = self.model(tokens[:, None].to(self.device), state)
        return logits[:, -1], state

    def complete(self, prompt: str, cfg: SampleConfig, generator: torch.Generator | None = None,
                 context: Context | None = None, alternatives: int = 0) -> Completion:
        """A streamed completion of `prompt` (the prompt itself is not repeated in the output).

        `context` continues from an earlier completion instead of the start of a document;
        `alternatives` > 0 records that many most likely tokens at each step.
        """
        if generator is None:
            generator = make_generator(cfg.seed, self.device)
        completion = Completion(iter(()))
        completion.pieces = self._pieces(prompt, cfg, generator, completion, context, alternatives)
        return completion

    @torch.no_grad()
    def _pieces(self, prompt: str, cfg: SampleConfig, generator: torch.Generator, completion: Completion,
                context: Context | None, alternatives: int) -> Iterator[str]:
        context, prompt_ids = self.prime(prompt, context)
        logits, state = context.logits, context.state
        seen = torch.zeros(self.tokenizer.vocab_size, dtype=torch.bool, device=self.device)
        seen[prompt_ids] = True
        decoder = self.tokenizer.stream_decoder()
        holdback = max((len(stop) for stop in cfg.stop), default=1) - 1
        text, emitted = "", 0
        completion.reason = "max_tokens"
        for _ in range(cfg.max_tokens):
            token = choose(filter_logits(logits, cfg, seen), cfg, generator)
            probs = torch.softmax(logits.float(), -1)  # the model's own distribution, before any filter
            step = TokenStep(token, "", float(probs[token]))
            if alternatives:
                top = torch.topk(probs, alternatives)
                step.alternatives = [(self.tokenizer.decode([int(i)]), float(p)) for p, i in zip(top.values, top.indices)]
            # The token is fed even when it ends the completion, so that `context` follows all the text.
            logits, state = self.step(torch.tensor([token]), state)
            logits = logits[0]
            if token == self.tokenizer.eot_id:
                completion.reason = "end_of_text"
                break
            completion.steps.append(step)
            seen[token] = True
            step.text = decoder.push(token)
            text += step.text
            hits = [i for i in (text.find(stop, max(0, emitted - holdback)) for stop in cfg.stop) if i >= 0]
            if hits:
                completion.reason = "stop"
                text = text[: min(hits)]
                break
            # Hold back what could be the start of a stop string until it is known not to be one.
            if len(text) - holdback > emitted:
                yield text[emitted: len(text) - holdback]
                emitted = len(text) - holdback
        completion.context = Context(logits, state)
        if completion.reason != "stop":
            text += decoder.flush()
        if len(text) > emitted:
            yield text[emitted:]

    @torch.no_grad()
    def beam_search(self, prompt: str, beams: int, max_tokens: int, length_penalty: float = 1.0) -> list[Beam]:
        """Deterministic beam search over the carried states; the best beam first."""
        context, _ = self.prime(prompt)
        found = beam_search(self.step, context, beams, max_tokens, self.tokenizer.eot_id, length_penalty)
        return [Beam(self.tokenizer.decode(tokens), tokens, logprob, score) for tokens, logprob, score in found]
