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

import torch

from rnngen.config import SampleConfig
from rnngen.models import RecurrentLM, State
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
class Completion:
    """One completion, streamed as text pieces; `reason` and `tokens` are set once it is consumed."""

    pieces: Iterator[str]
    tokens: list[int] = field(default_factory=list)
    reason: str = ""

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
        self.decoder = model.decoder() if self.device.type == "cpu" else None

    @torch.no_grad()
    def prime(self, prompt: str) -> tuple[torch.Tensor, State, list[int]]:
        """Run the prompt through the fused layers in one pass: next-token logits, state, prompt ids."""
        ids = self.tokenizer.encode(prompt)
        logits, state = self.model(torch.tensor([self.start + ids], device=self.device))
        return logits[0, -1], state, ids

    @torch.no_grad()
    def step(self, token: int, state: State) -> tuple[torch.Tensor, State]:
        """Feed one token: the next-token logits [vocab] and the new state."""
        if self.decoder is not None:
            logits, state = self.decoder.step(torch.tensor([token]), state)
            return logits[0], state
        logits, state = self.model(torch.tensor([[token]], device=self.device), state)
        return logits[0, -1], state

    def complete(self, prompt: str, cfg: SampleConfig, generator: torch.Generator | None = None) -> Completion:
        """A streamed completion of `prompt`; the prompt itself is not repeated in the output."""
        if generator is None:
            generator = make_generator(cfg.seed, self.device)
        completion = Completion(iter(()))
        completion.pieces = self._pieces(prompt, cfg, generator, completion)
        return completion

    @torch.no_grad()
    def _pieces(self, prompt: str, cfg: SampleConfig, generator: torch.Generator,
                completion: Completion) -> Iterator[str]:
        logits, state, prompt_ids = self.prime(prompt)
        seen = torch.zeros(self.tokenizer.vocab_size, dtype=torch.bool, device=self.device)
        seen[prompt_ids] = True
        decoder = self.tokenizer.stream_decoder()
        holdback = max((len(stop) for stop in cfg.stop), default=1) - 1
        text, emitted = "", 0
        completion.reason = "max_tokens"
        for _ in range(cfg.max_tokens):
            token = choose(filter_logits(logits, cfg, seen), cfg, generator)
            if token == self.tokenizer.eot_id:
                completion.reason = "end_of_text"
                break
            completion.tokens.append(token)
            seen[token] = True
            text += decoder.push(token)
            hits = [i for i in (text.find(stop, max(0, emitted - holdback)) for stop in cfg.stop) if i >= 0]
            if hits:
                completion.reason = "stop"
                text = text[: min(hits)]
                break
            # Hold back what could be the start of a stop string until it is known not to be one.
            if len(text) - holdback > emitted:
                yield text[emitted: len(text) - holdback]
                emitted = len(text) - holdback
            logits, state = self.step(token, state)
        if completion.reason != "stop":
            text += decoder.flush()
        if len(text) > emitted:
            yield text[emitted:]
