"""`rnngen serve`: options in, an OpenAI-compatible server and a web page out (the server is `rnngen.server`)."""

from __future__ import annotations

import click

from rnngen.cli.common import Paths, pass_paths
from rnngen.config import DEVICES
from rnngen.generation.scheduler import MAX_BATCH, MAX_QUEUE


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
    help="Require `Authorization: Bearer KEY` on every route but the page and /health (or set RNNGEN_API_KEY).",
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
    max_batch: int,
    max_queue: int,
    device: str,
) -> None:
    """Serve models over an OpenAI-compatible HTTP API, with a web page at /.

    \b
    pip install "rnngen[serve]"
    rnngen serve                                           # the latest run, on http://127.0.0.1:8000
    rnngen serve --checkpoint notes-lstm --checkpoint notes-gru --port 8080
    rnngen serve --host 0.0.0.0 --api-key "$(openssl rand -hex 16)"
    curl http://127.0.0.1:8000/v1/completions -H "Content-Type: application/json" \\
        -d '{"model": "notes-lstm", "prompt": "The gradient", "max_tokens": 40}'
    """
    from rnngen.cli.display import err
    from rnngen.errors import RnngenError

    try:
        from rnngen.server import serving
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
    if not serving.is_loopback(host) and not api_key:
        err.print(
            f"warning: {host} is reachable from other machines and no --api-key is set: anyone who reaches it can "
            "use the models",
            style="bold",
            markup=False,
            soft_wrap=True,
        )
    serving.serve(models, sock, api_key, max_batch, max_queue)
