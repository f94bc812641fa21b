"""`rnngen serve`: an OpenAI-compatible HTTP server and a web page over continuous batching.

`requests.py` reads and checks what a client sends, `responses.py` writes OpenAI's shapes, `guards.py` says who may
use the server (the Host, a web page's Origin, the API key), `metrics.py` counts for Prometheus, `app.py` is the ASGI
application (FastAPI) and `serving.py` loads the models and runs it with uvicorn. The decoding itself is
`rnngen.generation.scheduler`: this package only speaks HTTP. Needs the `serve` extra (`pip install "rnngen[serve]"`).
"""
