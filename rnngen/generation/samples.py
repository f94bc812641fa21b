"""Samples while a model learns: at each evaluation, a short completion of one fixed prompt.

The completion is the library's own (`Completer`), drawn from the training model with a fixed seed,
so the samples of one run differ only by what the model has learnt in between: noise first, then
words. Sampling uses its own random generator, so it leaves the training's random state (and a
resumed run's losses) untouched.
"""

from __future__ import annotations

import re

from rnngen.config import SampleConfig
from rnngen.data.reading import Corpus
from rnngen.data.sources import DEFAULT_DATASET
from rnngen.generation.completer import Completer, starts_documents
from rnngen.models import RecurrentLM
from rnngen.training.events import Sampled

# The README's prompt, for the embedded corpus: a reader can compare the run's samples with it.
PYDOCS_PROMPT = "Studying Deep Learning is really"
# Short, so a sample costs little next to an evaluation; the default temperature; seeded, so that
# samples of one run are comparable from one evaluation to the next.
SAMPLE = SampleConfig(max_tokens=40, seed=0)


def default_prompt(corpus: Corpus, words: int = 4) -> str:
    """The README's prompt on the embedded corpus, else the opening `words` words of the validation text.

    A single text held out by characters (tiny shakespeare) has a validation split that starts
    mid-word: its first, partial word is skipped.
    """
    if corpus.meta["source"]["dataset"] == DEFAULT_DATASET:
        return PYDOCS_PROMPT
    opening = corpus.tokenizer().decode(int(i) for i in corpus.tokens("val")[: 16 * (words + 1)])
    skip = 0 if starts_documents(corpus.identity()) else 1
    return " ".join(re.findall(r"\S+", opening)[skip : skip + words])


class Sampler:
    """Completes one prompt with the training model; `last` is the most recent sample."""

    def __init__(self, model: RecurrentLM, corpus: Corpus, prompt: str | None, device):
        self.model, self.device = model, device
        self.tokenizer = corpus.tokenizer()
        self.prompt = default_prompt(corpus) if prompt is None else prompt
        self.start_with_eot = starts_documents(corpus.identity())
        self.last: Sampled | None = None

    def __call__(self, step: int) -> Sampled:
        """The completion at `step`; the model is back in its mode (training) afterwards."""
        training = self.model.training
        completer = Completer.for_module(self.model, self.tokenizer, self.device, start_with_eot=self.start_with_eot)
        try:
            text = completer.complete(self.prompt, SAMPLE).text()
        finally:
            self.model.train(training)
        self.last = Sampled(step=step, prompt=self.prompt, text=text)
        return self.last
