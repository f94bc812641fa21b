"""Checkpoint -> completion: priming a prompt, drawing tokens, beam search."""
