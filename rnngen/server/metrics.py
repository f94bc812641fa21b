"""`GET /metrics`: what the server did, in Prometheus' text format (`prometheus_client`), as llama.cpp's `--metrics`
and vLLM's `/metrics` give it.

Each application has its own registry (two servers in one process count apart). Requests are counted by route and
status as they are answered; the schedulers' counters (prompt tokens read and cached, tokens written, rows, queue,
the state cache) are read when Prometheus scrapes; the time to the first token and between tokens are observed as
each request's updates reach its handler on the event loop, which is what a client sees, less the network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# The routes requests are counted by; any other path is counted as "other", so that a scan of random paths cannot
# make a series of each.
ROUTES = (
    "/",
    "/health",
    "/metrics",
    "/tokenize",
    "/detokenize",
    "/v1/models",
    "/v1/completions",
    "/v1/chat/completions",
)
FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BETWEEN_TOKENS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def route_of(path: str) -> str:
    """The route a path is counted under."""
    if path.startswith("/v1/models/"):
        return "/v1/models/{id}"
    return path if path in ROUTES else "other"


class Metrics:
    """The registry of one application: `requests` by route and status, the token-time histograms by model, and the
    schedulers' counters (`schedulers`: model id -> `Scheduler`, read at each scrape)."""

    def __init__(self, schedulers: Mapping[str, Any]):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "rnngen_requests",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.first_token = Histogram(
            "rnngen_time_to_first_token_seconds",
            "From a request's arrival to its first token reaching its handler",
            ["model"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.between_tokens = Histogram(
            "rnngen_time_between_tokens_seconds",
            "Between two tokens of one completion reaching its handler",
            ["model"],
            buckets=BETWEEN_TOKENS_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Schedulers(schedulers))

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class _Schedulers:
    """A collector reading each scheduler's counters when Prometheus scrapes."""

    def __init__(self, schedulers: Mapping[str, Any]):
        self.schedulers = schedulers

    def describe(self) -> list[Metric]:
        return []  # read at each scrape: nothing to check for clashes beforehand

    def collect(self) -> Iterator[Metric]:
        counters: list[tuple[str, str, Callable[[Any], float]]] = [
            ("rnngen_prompt_tokens", "Prompt tokens of the requests read", lambda s: s.prompt_tokens),
            (
                "rnngen_cached_prompt_tokens",
                "Prompt tokens resumed from the state cache, not read",
                lambda s: s.cached_tokens,
            ),
            ("rnngen_generation_tokens", "Tokens written", lambda s: s.tokens),
            ("rnngen_batched_steps", "Batched model steps", lambda s: s.steps),
            ("rnngen_state_cache_hits", "Prompts that resumed from the state cache", lambda s: s.cache_hits),
        ]
        gauges: list[tuple[str, str, Callable[[Any], float]]] = [
            ("rnngen_rows_decoding", "Completions decoding now", lambda s: s.rows),
            ("rnngen_requests_waiting", "Requests waiting for room in the batch", lambda s: s.waiting),
            ("rnngen_state_cache_bytes", "Bytes the state cache holds", lambda s: s.cache.bytes),
            ("rnngen_state_cache_limit_bytes", "The state cache's bound (--state-cache)", lambda s: s.cache.max_bytes),
            ("rnngen_state_cache_entries", "States the state cache holds", lambda s: s.cache.entries),
        ]
        for kind, specs in ((CounterMetricFamily, counters), (GaugeMetricFamily, gauges)):
            for name, text, read in specs:
                family = kind(name, text, labels=["model"])
                for model, scheduler in self.schedulers.items():
                    family.add_metric([model], read(scheduler))
                yield family
