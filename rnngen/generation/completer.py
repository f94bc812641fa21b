"""Completion: read the prompt in one pass, then decode token by token with the carried state.

Each generated token costs one step of the recurrence whatever the length so far: the state is all
the model remembers. Prompts start after the end-of-text id, the state in which every training
document began, so an empty prompt generates from the start of a document. A corpus of a single
text (tiny shakespeare) never showed the model that id in training: its prompts start after a
newline from the zero state, the state every training stream started from.

On the CPU the model runs in NumPy (`NumpyLM`) and completion never imports torch; on a GPU it is
the torch model (`TorchLM`). Sampling and beam search are the same code on either's arrays.

A prompt is read by `rnngen.generation.reading`, the path the server reads with too: `read` keeps what a text
left (a `TextState`), and `complete(..., after=state)` continues that text, reading only what it lacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rnngen.config import SampleConfig
from rnngen.data.tokenizer import Tokenizer, load_checked
from rnngen.errors import RnngenError, param
from rnngen.generation.arrays import NUMPY, PRIME_CHUNK
from rnngen.generation.beam import Beam, beam_search
from rnngen.generation.decoding import Batch, Row, TokenStep, first_stop
from rnngen.generation.language_model import LanguageModel
from rnngen.generation.numpy_lm import NumpyLM
from rnngen.generation.read_state import ReadState, TextState
from rnngen.generation.reading import Reading, keep_point
from rnngen.store.runs import RunFolder
from rnngen.training.bits import bits_per_character


class Completion:
    """One completion, generated while it is streamed: iterate it for text pieces, or call `text()`.

    Built by `Completer.complete`; nothing is computed until it is iterated. It decodes a batch of one row, on the
    core every completion uses (`rnngen.generation.decoding`). `steps` and `memory` describe the text generated so
    far, at any moment: after an interruption (Ctrl-C in a chat) they hold the completion up to it, and `memory`
    continues from there. `reason` ("max_tokens", "end_of_text" or "stop") exists once the stream has ended;
    reading it earlier is an error rather than a silent empty value.
    """

    def __init__(
        self,
        completer: Completer,
        prompt: str,
        cfg: SampleConfig,
        generator: Any,
        start: ReadState | None = None,
        alternatives: int = 0,
        after: TextState | None = None,
    ):
        self.memory: ReadState | None = None  # the model after the prompt and the text so far, to continue from
        self.prompt_state: TextState | None = None  # the text read before the completion (`after`'s and the prompt)
        self._row: Row | None = None
        self._pieces = self._generate(completer, prompt, cfg, generator, start, alternatives, after)

    @property
    def finished(self) -> bool:
        return self._row is not None and self._row.finished

    @property
    def reason(self) -> str:
        if not self.finished:
            raise RuntimeError(
                "Completion.reason is known once the completion is consumed: iterate it or call text() first"
            )
        return self._row.reason

    @property
    def steps(self) -> list[TokenStep]:
        return self._row.steps if self._row is not None else []

    @property
    def tokens(self) -> list[int]:
        return [step.token for step in self.steps]

    @property
    def written(self) -> str:
        """The text written so far, all of it (shown or held back while it could begin a stop string), without a stop
        string that ended it: what a running text goes on with."""
        return self._row.text if self._row is not None else ""

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def text(self) -> str:
        """The rest of the completion's text, generating it."""
        return "".join(self._pieces)

    def _generate(
        self,
        completer: Completer,
        prompt: str,
        cfg: SampleConfig,
        generator: Any,
        start: ReadState | None,
        alternatives: int,
        after: TextState | None,
    ) -> Iterator[str]:
        if start is None:
            text = (after.text if after is not None else "") + prompt
            reading = completer.reading(text, after=after)
            self.prompt_state = reading.text_state(text)
            self.memory, prompt_ids = self.prompt_state.memory, reading.ids[len(completer.start) :]
        else:
            self.memory, prompt_ids = completer.prime(prompt, start)
        self._row = row = Row(completer.tokenizer, cfg, generator, prompt_ids, alternatives)
        batch = Batch(completer.lm, completer.tokenizer.vocab_size)
        batch.add(row, self.memory)
        while not row.finished:
            [(_, piece)] = batch.step()
            self.memory = row.memory or batch.read_state(0)
            if piece:
                yield piece


def on_cpu(device: Any) -> bool:
    return str(device) == "cpu"


def starts_documents(corpus: dict[str, Any]) -> bool:
    """Whether prompts start after the end-of-text id: the corpus (`corpus`, what a checkpoint records of it,
    `Corpus.identity()`) held documents separated by that id; else it was one text cut by characters (see the
    module)."""
    return corpus["train_documents"] > 0


class Completer:
    """Completes prompts with a trained model: a `NumpyLM` (the CPU) or a `TorchLM` (any device).

    Prompts start after the end-of-text id with `start_with_eot`, else after a newline (see the module).
    """

    def __init__(self, lm: LanguageModel, tokenizer: Tokenizer, start_with_eot: bool = True):
        self.lm = lm
        self.start = [tokenizer.eot_id] if start_with_eot else tokenizer.encode("\n")
        self.tokenizer = tokenizer
        self._word_starts: np.ndarray | None = None  # per id: its piece begins a word (`keep_point`)
        self._newline = tokenizer.sp.piece_to_id("\n")

    @classmethod
    def for_module(
        cls, module: Any, tokenizer: Tokenizer, device: Any = "cpu", start_with_eot: bool = True
    ) -> Completer:
        """A completer for a torch `RecurrentLM` (a model in training, or loaded with torch): on the CPU a
        NumPy copy of its weights, on any other device the module itself, moved there."""
        if on_cpu(device):
            return cls(NumpyLM.from_module(module), tokenizer, start_with_eot)
        from rnngen.generation.torch_lm import TorchLM

        return cls(TorchLM(module, device), tokenizer, start_with_eot)

    @classmethod
    def from_checkpoint(cls, run: RunFolder, path: Path, device: Any = "cpu") -> Completer:
        """A completer for checkpoint `path` of `run`; prompts start as that corpus's documents did.

        On the CPU the weights are read with `safetensors.numpy`: no torch is imported.
        """
        if on_cpu(device):
            from rnngen.store.checkpoint_format import read_numpy

            ckpt = read_numpy(path)
            tok = load_checked(run.tokenizer_path, ckpt.corpus, ckpt.model.vocab_size)
            lm: LanguageModel = NumpyLM(ckpt.model, ckpt.weights)
        else:
            from rnngen.generation.torch_lm import TorchLM
            from rnngen.models.checkpoint import load_model

            module, tok, ckpt = load_model(run, path, device)
            lm = TorchLM(module, device)
        return cls(lm, tok, start_with_eot=starts_documents(ckpt.corpus))

    def generator(self, seed: int | None) -> Any:
        """A random generator for sampling with this completer: seeded for reproducible samples, else from the OS."""
        return self.lm.generator(seed)

    def prime(self, prompt: str, memory: ReadState | None = None) -> tuple[ReadState, list[int]]:
        """Run the prompt through the model in one pass, from the start of a document or from
        `memory`; returns the model's state after it and the prompt's ids."""
        ids = self.tokenizer.encode(prompt)
        if memory is None:
            reading = self.reading_ids(self.document(ids))
            reading.advance()
            return reading.memory, ids
        if not ids:
            return memory, ids
        # A state of unknown place in its document: the prompt is read as if it began one.
        logits, state = self.lm.prime(ids, memory.state)
        return ReadState(logits, state), ids

    def reading(self, text: str, cache: Any = None, after: TextState | None = None) -> Reading:
        """A `Reading` of `text` from the start of a document, resuming from `cache` (a `StateCache` of this model)
        or from `after` (a `TextState` of a text `text` starts with) where they hold a state of its first tokens."""
        return self.reading_ids(self.document(self.tokenizer.encode(text)), cache, after)

    def reading_ids(self, ids: list[int], cache: Any = None, after: TextState | None = None) -> Reading:
        """`reading` of a document's `ids` (its start included)."""
        if self._word_starts is None:
            pieces = [self.tokenizer.sp.id_to_piece(i) for i in range(self.tokenizer.vocab_size)]
            self._word_starts = np.array([piece.startswith("\u2581") for piece in pieces])
        point = keep_point(ids, self._word_starts, self._newline, len(self.start), self.lm.exact_every)
        return Reading(self.lm, ids, point, cache, after)

    def read(self, text: str, after: TextState | None = None) -> TextState:
        """The model after reading `text` from the start of a document, or `after`'s text followed by `text`: a
        `TextState` to complete from many times (`complete(..., after=state)`). With `after`, only what its
        state lacks is read, and the result is to the last bit that of reading the whole text at once."""
        whole = (after.text if after is not None else "") + text
        return self.reading(whole, after=after).text_state(whole)

    def document(self, ids: list[int]) -> list[int]:
        """The ids a model reads for a prompt of `ids` at the start of a document (see the module)."""
        return self.start + ids

    def bits_per_character(self, text: str) -> float:
        """Bits per character of `text` (not empty), read from the start of a document: `bits_per_character` of
        its tokens' negative log-likelihood and of the bytes the tokenizer cannot spell (the word model's unknown
        pieces), as `rnngen evaluate` reports a split.

        The text goes through the model in fused chunks, as a prompt is primed, with the head on every
        position; only the log-probabilities of the tokens that came are kept.
        """
        encoded = self.tokenizer.encode(text)
        ids = self.start + encoded
        state, total = None, 0.0
        for start in range(0, len(ids) - 1, PRIME_CHUNK):
            logits, state = self.lm.logits_after_each(ids[start : start + PRIME_CHUNK], state)
            targets = np.asarray(ids[start + 1 : start + PRIME_CHUNK + 1])
            log_probs = NUMPY.log_softmax(logits[: len(targets)])
            total -= float(log_probs[np.arange(len(targets)), targets].sum(dtype=np.float64))
        return bits_per_character(total, self.tokenizer.unknown_bytes(text, encoded), len(text))

    def step(self, tokens: Any, state: Any) -> tuple[Any, Any]:
        """Feed one token per row (tokens [batch]): next-token logits [batch, vocab] and the new state."""
        return self.lm.step(tokens, state)

    def complete(
        self,
        prompt: str,
        cfg: SampleConfig,
        generator: Any = None,
        memory: ReadState | None = None,
        alternatives: int = 0,
        after: TextState | None = None,
    ) -> Completion:
        """A streamed completion of `prompt` (the prompt itself is not repeated in the output).

        `after` continues the text a `TextState` read (`read`): the completion is that of its text followed by
        `prompt`, reading only what the state lacks. `memory` continues from a bare state instead of the start of a
        document; `alternatives` > 0 records that many most likely tokens at each step.
        """
        vocab = self.tokenizer.vocab_size
        if alternatives > vocab:
            raise RnngenError(
                f"{param('alternatives')} {alternatives} is more than the vocabulary's {vocab} tokens: "
                f"use at most {vocab}"
            )
        if generator is None:
            generator = self.generator(cfg.seed)
        return Completion(self, prompt, cfg, generator, memory, alternatives, after)

    def beam_search(
        self, prompt: str, beams: int, max_tokens: int, length_penalty: float = 1.0, stop: tuple[str, ...] = ()
    ) -> list[Beam]:
        """Deterministic beam search over the carried states; the best beam first. Each beam's text ends before
        the first of the `stop` strings in it."""
        limit = max_beams(self.tokenizer.vocab_size)
        if not 1 <= beams <= limit:
            raise RnngenError(
                f"{param('beams')} {beams} is more than this model's {self.tokenizer.vocab_size}-token vocabulary "
                f"can search in memory: use 1 to {limit}"
            )
        SampleConfig(max_tokens=max_tokens, stop=tuple(stop))  # the same bounds as sampling
        memory, _ = self.prime(prompt)

        def cut(tokens: list[int]) -> int | None:
            return self._until_stop(tokens, stop)[1] if stop else None

        found = beam_search(self.lm.step, memory, beams, max_tokens, self.tokenizer.eot_id, length_penalty, cut)
        # Beams of other tokens can write the same text: the best-scored one stands for it.
        unique: dict[str, Beam] = {}
        for tokens, logprob, score in found:
            text, _ = self._until_stop(tokens, stop)
            if text not in unique:
                unique[text] = Beam(text, tokens, logprob, score)
        return list(unique.values())

    def _until_stop(self, tokens: list[int], stop: tuple[str, ...]) -> tuple[str, int | None]:
        """The text of `tokens` up to the first `stop` string in it, and how many tokens wrote that text (None when
        no stop string came: then the text is all of theirs)."""
        decoder, text, ends = self.tokenizer.stream_decoder(), "", []
        for token in tokens:
            text += decoder.push(token)
            ends.append(len(text))
            position = first_stop(text, stop)
            if position is not None:
                return text[:position], next(count for count, end in enumerate([0, *ends]) if end >= position)
        return text + decoder.flush(), None


# Each beam search step ranks beams x vocabulary candidates in float32 arrays, a few at a time: 2**24 of them
# (64 MB an array) keeps a search within a few hundred MB.
MAX_BEAM_CANDIDATES = 2**24


def max_beams(vocab_size: int) -> int:
    """The most beams a search over `vocab_size` tokens may keep: no more than the tokens (more cannot differ at
    the first step), and within `MAX_BEAM_CANDIDATES` candidates a step."""
    return max(1, min(vocab_size, MAX_BEAM_CANDIDATES // vocab_size))
