"""Orchestrators: pure coordination (no I/O, time only from the context), messages as dicts."""
