"""Restores that work inside a restore point: file-level browsing and extraction."""
