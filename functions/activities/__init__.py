"""Activities: each converts its input dict to a message, calls one use case from
``shared.wiring.services()`` and returns the result as a dict. No logic, no SDK calls, no secrets."""
