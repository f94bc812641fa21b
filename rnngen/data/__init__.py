"""Corpus -> tokens: where the text comes from, the tokenizer, and the token arrays on disk. No torch here."""
