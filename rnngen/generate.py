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

from rnngen.checkpoint import load_model
from rnngen.config import SampleConfig
from rnngen.models import RecurrentLM, State
from rnngen.runs import RunFolder
from rnngen.tokenizer import Tokenizer


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A random generator for sampling: seeded for reproducible samples, else from the OS."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def filter_logits(logits: torch.Tensor, cfg: SampleConfig, seen: torch.Tensor | None = None) -> torch.Tensor:
    """Apply repetition penalty, temperature, top-k and top-p to logits [vocab]; removed tokens get -inf.

    The repetition penalty follows CTRL (Keskar et al. 2019): logits of tokens already in the text
    are divided by the penalty when positive and multiplied when negative.
    """
    logits = logits.float()
    if cfg.repetition_penalty != 1.0 and seen is not None:
        penalised = torch.where(logits > 0, logits / cfg.repetition_penalty, logits * cfg.repetition_penalty)
        logits = torch.where(seen, penalised, logits)
    if cfg.temperature > 0:
        logits = logits / cfg.temperature
    if 0 < cfg.top_k < logits.numel():
        kth = torch.topk(logits, cfg.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, -1)
        # Keep the smallest prefix whose mass reaches top_p: drop a token once the mass before it does.
        drop = (probs.cumsum(-1) - probs) >= cfg.top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    return logits


def choose(logits: torch.Tensor, cfg: SampleConfig, generator: torch.Generator) -> int:
    """Greedy at temperature 0, else one draw from softmax(logits).

    The draw inverts the cumulative distribution at one uniform number: exact, and a few
    microseconds where `torch.multinomial` costs a fifth of a millisecond (see shared PERF_NOTES).
    """
    if cfg.temperature == 0:
        return int(torch.argmax(logits))
    cdf = torch.softmax(logits, -1).cumsum(0)
    u = torch.rand(1, generator=generator, device=logits.device) * cdf[-1]
    # Filtered tokens add nothing to the sum, so `u` can never land on them; min() guards the top end.
    return min(int(torch.searchsorted(cdf, u, right=True)), logits.numel() - 1)


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


@dataclass
class Beam:
    """A finished beam: its text, summed log-probability and length-normalised score."""

    text: str
    tokens: list[int]
    logprob: float
    score: float


class Completer:
    """Completes prompts with a trained model."""

    def __init__(self, model: RecurrentLM, tokenizer: Tokenizer, device: torch.device | str = "cpu",
                 start_with_eot: bool = True):
        self.model = model.eval()
        self.start = [tokenizer.eot_id] if start_with_eot else tokenizer.encode("\n")
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        # The fused layers serve length-1 steps well on a GPU; on the CPU the NumPy step is faster.
        self.decoder = model.decoder() if self.device.type == "cpu" else None

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


def _rows(state: State, index: torch.Tensor) -> State:
    """The batch rows `index` of a state (beams are batch rows)."""
    if isinstance(state, torch.Tensor):
        return state.index_select(1, index)
    return tuple(s.index_select(1, index) for s in state)


def length_normalised(logprob: float, length: int, penalty: float) -> float:
    """GNMT's length normalisation (Wu et al. 2016): logprob / ((5 + length) / 6) ** penalty."""
    return logprob / ((5 + length) / 6) ** penalty


def beam_search(step, context: Context, beams: int, max_tokens: int, eot: int,
                length_penalty: float = 1.0) -> list[tuple[list[int], float, float]]:
    """Beam search with `step(tokens [B], state) -> (logits [B, V], state)` from `context`.

    Each beam is a batch row of the state. A beam ends at the end-of-text id or after `max_tokens`;
    the search stops once `beams` beams have ended, and they are ranked by length-normalised
    log-probability. Returns (tokens, logprob,
    score) for up to `beams` beams, best first.
    """
    logprobs = torch.log_softmax(context.logits.float(), -1)[None]  # [1, V]
    state = context.state
    sequences: list[list[int]] = [[]]
    totals = torch.zeros(1)
    finished: list[tuple[list[int], float, float]] = []
    for length in range(1, max_tokens + 1):
        candidates = (totals[:, None] + logprobs.cpu()).flatten()  # [rows * V]
        top = torch.topk(candidates, min(2 * beams, candidates.numel()))
        rows, tokens, kept = [], [], []
        for score, flat in zip(top.values.tolist(), top.indices.tolist()):
            row, token = divmod(flat, logprobs.size(-1))
            sequence = sequences[row] + [token]
            if token == eot:
                finished.append((sequence[:-1], score, length_normalised(score, length, length_penalty)))
            elif len(kept) < beams:
                rows.append(row)
                tokens.append(token)
                kept.append((sequence, score))
        # Stop once `beams` beams have ended (early stopping, as Hugging Face's `early_stopping=True`).
        if not kept or len(finished) >= beams:
            break
        sequences = [sequence for sequence, _ in kept]
        totals = torch.tensor([score for _, score in kept])
        state = _rows(state, torch.tensor(rows, device=_device_of(state)))
        logits, state = step(torch.tensor(tokens), state)
        logprobs = torch.log_softmax(logits.float(), -1)
    else:
        finished += [(sequence, float(total), length_normalised(float(total), max_tokens, length_penalty))
                     for sequence, total in zip(sequences, totals)]
    finished.sort(key=lambda item: -item[2])
    return finished[:beams]


def _device_of(state: State) -> torch.device:
    return (state if isinstance(state, torch.Tensor) else state[0]).device
