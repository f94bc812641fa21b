"""Model -> checkpoint: the training loop and everything a run folder holds."""
