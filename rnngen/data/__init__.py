"""Corpus -> tokens: where the text comes from, the tokenizer, and the token arrays on disk. No torch here.

`sources` and `pydocs` yield documents; `tokenizer` wraps sentencepiece; `vocabulary` picks and trains a
corpus's tokenizer; `encoding` writes the token files and holds out the validation text; `building` makes
a corpus folder's contents; `preparing` is `prepare()`, the transaction around that; `reading` opens a
prepared corpus (`Corpus`); `streams` cuts its tokens into training windows.
"""
