"""Telemetry: OpenTelemetry traces, metrics and logs of sessions, from the trigger into the worker.

    trace_context   pure: W3C ``traceparent`` values, and span ids derived from them (orchestrators)
    setup           where telemetry goes, chosen at the edges (app services, worker main, CLI)
    spans           spans with a parent from a ``traceparent`` string; orchestration spans
    metrics         bytes read and stored, throughput, snapshots created and deleted, session results

A session's trace: the HTTP or timer trigger opens the root span and puts its ``traceparent`` into
the orchestration input; each orchestrator derives its own span id from it (deterministically, so
every replay passes its children the same parent) and emits its span once, when it ends and is not
replaying; activities open spans under the ``traceparent`` their input carries; the job spec carries
the start activity's ``traceparent`` into the worker. A ``traceparent`` holds ids only, no secret.

Nothing here configures anything at import; without :func:`setup.configure_telemetry` the API's
no-op providers make every call cheap and silent.
"""
