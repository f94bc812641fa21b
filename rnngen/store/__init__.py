"""Stored formats: run folders, checkpoint files, names, locks, atomic writes and hub models; no torch."""
