"""`serve()`: load the models, bind the address, and run the application with uvicorn until SIGTERM or Ctrl-C.

The socket is bound here, before uvicorn starts, so that an address in use is one clear error and `port=0` (a free
port, for tests and scripts) is known before the first request. SIGTERM and Ctrl-C stop accepting connections, let
the requests in flight finish within the grace period (`GRACE_SECONDS` unless told), and end those still open a
little before it runs out (`app.begin_shutdown`): a stream then ends with an error event and `[DONE]`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rnngen.errors import RnngenError, param
from rnngen.generation.limits import GRACE_SECONDS
from rnngen.generation.loading import load_completer
from rnngen.server.app import ServedModel, begin_shutdown, create_app
from rnngen.store.hub import is_hub_ref


def load_models(references: Sequence[str], checkpoints: Path, device: str) -> list[ServedModel]:
    """The models `references` name (runs, folders, .safetensors files, `hf:USER/NAME`; none: the latest run), each
    under the id clients send as `model`: the run's name, or the `hf:` reference as given."""
    models: list[ServedModel] = []
    for reference in references or [None]:
        completer, run, path = load_completer(reference, checkpoints, device)
        model_id = reference if reference and is_hub_ref(reference) else run.name
        if any(model.id == model_id for model in models):
            raise RnngenError(
                f"two models would be served as {model_id} (clients name a model by its run's name): name each run "
                f"once, and copy a second run of that name under another name"
            )
        models.append(ServedModel(model_id, completer, int(os.path.getmtime(path))))
    return models


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), or an error naming the fix."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(2048)
    except OSError as exc:
        raise RnngenError(
            f"cannot listen on {host}:{port} ({exc.strerror}): pass another {param('port')} or {param('host')}"
        ) from exc
    sock.set_inheritable(True)
    return sock


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, whose stop on SIGTERM or Ctrl-C is the command's normal end (exit 0): uvicorn would raise
        the signal again once it has stopped, and the command would end as killed by it. The application is told,
        so that it ends its open requests before the grace period runs out."""

        def handle_exit(self, sig, frame) -> None:
            if not self.should_exit:
                begin_shutdown(self.config.app, self.config.timeout_graceful_shutdown)
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return Server


def serve(models: list[ServedModel], sock: socket.socket, grace: float = GRACE_SECONDS, **options: Any) -> None:
    """Serve `models` on `sock` (bound by `bind`: clients may connect from then on, and are answered once the
    schedulers run) until SIGTERM or Ctrl-C, then end within `grace` seconds. `options` are `create_app`'s."""
    import uvicorn

    if options.get("max_batch", 1) < 1 or options.get("max_queue", 0) < 0:
        raise RnngenError(
            f"{param('max_batch')} must be at least 1 and {param('max_queue')} at least 0, got "
            f"{options.get('max_batch')}, {options.get('max_queue')}"
        )
    app = create_app(models, **options)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=grace, lifespan="on")
    _server_class()(config).run(sockets=[sock])


@contextlib.contextmanager
def in_thread(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """`app` (from `create_app`) served by uvicorn in a thread of this process, on a free port of `host`, until the
    block ends: its base URL. Tests, benchmarks and scripts drive a real server this way."""
    import uvicorn

    sock = bind(host, 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    if not server.started:
        sock.close()
        raise RnngenError("the server stopped before it started: see the lines above")
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(GRACE_SECONDS)
        sock.close()
