"""Bulwark's local infrastructure: Azurite launcher, the Azure simulator and the local stack.

This is development and demo infrastructure, not product code: nothing in ``shared/`` or
``functions/`` imports it.
"""
