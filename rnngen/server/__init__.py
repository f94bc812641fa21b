"""`rnngen serve`: an OpenAI-compatible HTTP server and a web page over continuous batching.

`requests.py` reads and checks what a client sends, `responses.py` writes OpenAI's shapes, `app.py` is the ASGI
application (FastAPI) and `serving.py` loads the models and runs it with uvicorn. The decoding itself is
`rnngen.generation.scheduler`: this package only speaks HTTP. Needs the `serve` extra (`pip install "rnngen[serve]"`).
"""
