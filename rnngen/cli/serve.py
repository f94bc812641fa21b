"""`rnngen serve`: options in, an OpenAI-compatible server and a web page out (the server is `rnngen.server`)."""

from __future__ import annotations

import click

from rnngen.cli.common import Paths, pass_paths
from rnngen.config import DEVICES
from rnngen.generation.limits import GRACE_SECONDS, MAX_BATCH, MAX_PROMPT_TOKENS, MAX_QUEUE, STATE_CACHE_MB


@click.command()
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    metavar="RUN",
    help="A model to serve: a run folder or name, a .safetensors file or hf:USER/NAME; repeat it to serve several "
    "(clients pick one with `model`, the run's name). [default: the latest run]",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free port.")
@click.option(
    "--api-key",
    envvar="RNNGEN_API_KEY",
    help="Require `Authorization: Bearer KEY` on every route but the page and /health. Prefer setting "
    "RNNGEN_API_KEY: an option is visible to every user in `ps`.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A Host name clients reach the server by, besides loopback ones (repeatable; * for any). [default: loopback "
    "names on a loopback address, any name on another]",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="A web page's origin (https://app.example) that may call the API from a browser (repeatable; * for any). "
    "[default: none but the server's own page]",
)
@click.option(
    "--state-cache",
    "state_cache_mb",
    type=click.FloatRange(min=0),
    default=STATE_CACHE_MB,
    show_default=True,
    metavar="MB",
    help="Memory for the states of prompts already read, per model: a request that starts with one reads only the "
    "rest. 0 keeps none.",
)
@click.option(
    "--max-prompt-tokens",
    type=click.IntRange(min=1),
    default=MAX_PROMPT_TOKENS,
    show_default=True,
    help="Prompt tokens one request may ask to read; past it, 400.",
)
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=MAX_BATCH,
    show_default=True,
    help="Completions decoded together in one batched step; more requests wait in a queue.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(min=0),
    default=MAX_QUEUE,
    show_default=True,
    help="Requests that may wait for room in the batch; past it, 429 with Retry-After.",
)
@click.option(
    "--shutdown-grace",
    type=click.FloatRange(min=0),
    default=GRACE_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM or Ctrl-C, the time requests in flight have to finish; streams still open then end with an "
    "error event.",
)
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="cpu decodes in NumPy; auto is cuda where a GPU is, else cpu.",
)
@pass_paths
def serve(
    paths: Paths,
    checkpoints: tuple[str, ...],
    host: str,
    port: int,
    api_key: str | None,
    allowed_hosts: tuple[str, ...],
    cors_origins: tuple[str, ...],
    state_cache_mb: float,
    max_prompt_tokens: int,
    max_batch: int,
    max_queue: int,
    shutdown_grace: float,
    device: str,
) -> None:
    """Serve models over an OpenAI-compatible HTTP API, with a web page at /.

    \b
    pip install "rnngen[serve]"
    rnngen serve                                           # the latest run, on http://127.0.0.1:8000
    rnngen serve --checkpoint notes-lstm --checkpoint notes-gru --port 8080
    export RNNGEN_API_KEY="$(openssl rand -hex 16)"; rnngen serve --host 0.0.0.0 --allowed-host notes.example
    rnngen serve --state-cache 512 --cors-origin https://app.example
    curl http://127.0.0.1:8000/v1/completions -H "Content-Type: application/json" \\
        -d '{"model": "notes-lstm", "prompt": "The gradient", "max_tokens": 40}'
    """
    from rnngen.cli.display import err
    from rnngen.errors import RnngenError

    note = _blas_threads()
    try:
        from rnngen.server import serving
        from rnngen.server.guards import allowed_hosts as host_policy
        from rnngen.server.guards import host_name, is_loopback_name
    except ImportError as exc:
        raise RnngenError(f'rnngen serve needs its extra ({exc.name} is missing): pip install "rnngen[serve]"') from exc

    models = serving.load_models(checkpoints, paths.checkpoints, device)
    sock = serving.bind(host, port)
    where = sock.getsockname()
    url = f"http://{f'[{where[0]}]' if ':' in where[0] else where[0]}:{where[1]}"
    err.print(
        f"rnngen serve: listening on {url} (page at /, OpenAI API at {url}/v1), serving "
        f"{', '.join(model.id for model in models)}; Ctrl-C stops",
        markup=False,
        soft_wrap=True,
    )
    if note:
        err.print(note, style="dim", markup=False, soft_wrap=True)
    if not is_loopback_name(host_name(host)) and not api_key:
        err.print(
            f"warning: {host} is reachable from other machines and no --api-key is set: anyone who reaches it can "
            "use the models",
            style="bold",
            markup=False,
            soft_wrap=True,
        )
    serving.serve(
        models,
        sock,
        shutdown_grace,
        api_key=api_key,
        max_batch=max_batch,
        max_queue=max_queue,
        state_cache_mb=state_cache_mb,
        max_prompt_tokens=max_prompt_tokens,
        allowed_hosts=host_policy(host, allowed_hosts),
        cors_origins=cors_origins,
    )


def _blas_threads() -> str | None:
    """Let NumPy's BLAS use the cores other processes leave free, less one for the server's own event loop and
    scheduler; call before anything imports NumPy. A line saying so when other processes take cores, else None; a
    value the user set wins.

    BLAS threads wait for each other at every product, spinning: where another thread holds a core (another process,
    or the event loop writing the streams), a step waits for the thread that shares it. On 2 cores, with the server's
    clients on the same machine, two threads against one gave 26 against 437 tokens/s to one stream and 1,145
    against 1,816 to 64 on a busy machine, and 309 against 1,192 to 16 streams on one otherwise idle
    (docs/serve.md).
    """
    import os

    from rnngen.training.threads import busy_cores, free_threads

    if "OPENBLAS_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" in os.environ:
        return None
    cores = os.cpu_count() or 1
    free = free_threads(cores, busy_cores())
    threads = max(1, free - 1)
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    if free == cores:
        return None
    return (
        f"other processes keep {cores - free} of this machine's {cores} cores busy: NumPy computes on {threads} "
        f"thread{'s' * (threads != 1)} (set OPENBLAS_NUM_THREADS to choose)"
    )
