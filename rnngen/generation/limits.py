"""The server's default bounds, in a module that loads nothing: `rnngen serve --help` shows them, and the command
chooses NumPy's threads before NumPy loads."""

# The rows decoded together and the requests that may wait for room, unless the server is told otherwise.
MAX_BATCH, MAX_QUEUE = 64, 256
# Prompt tokens one request may ask to read (its prompts together): a 2x512 LSTM reads them in about 10 s on 2 cores.
MAX_PROMPT_TOKENS = 32_768
# States kept a served model: a 2x512 LSTM's is 8 KB, so 128 MB keep some 15,000 prefixes (conversations, documents).
STATE_CACHE_MB = 128
# Seconds the requests in flight have to finish once the server is told to stop (SIGTERM, Ctrl-C).
GRACE_SECONDS = 30
