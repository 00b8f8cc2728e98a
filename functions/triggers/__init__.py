"""Triggers: the HTTP API (run a policy now, session status) and the schedule timer."""
