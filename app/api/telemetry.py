"""FastAPI's native OpenTelemetry support, as Referee uses it.

FastAPI makes the HTTP request's SERVER span itself (named by the route
template, the caller's ``traceparent`` continued) once a tracer provider is
installed (:func:`app.observability.tracing.configure_tracing`); with none
it does nothing.
"""

from __future__ import annotations

from fastapi.telemetry import TelemetryConfig

FASTAPI_TELEMETRY: TelemetryConfig = {
    # FastAPI's own server span per request (named by route template, the
    # caller's traceparent continued, nothing when no provider is installed).
    "tracing": True,
    # Not its spans per dependency and serialisation: a comparison span sits
    # right under the request's.
    "operation_spans": False,
    # Prometheus has the metrics (app.observability.metrics).
    "metrics": False,
    # Its OpenTelemetry log records carry validation errors with the values
    # sent, which may be prompts; our log lines say what failed without them.
    "logs": False,
    "auto_configure": False,  # configure_tracing does that, from the same variables
}
"""What ``FastAPI(telemetry=...)`` gets: the HTTP span is FastAPI's own."""
