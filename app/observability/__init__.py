"""Seeing the service run: Prometheus metrics, OpenTelemetry traces, structured logs.

- :mod:`app.observability.metrics`: the ``referee_*`` Prometheus metric
  objects, the helpers that bound their label values, and the ``/metrics``
  exposition (on the API, a separate port, or a worker's ``--metrics-port``).
- :mod:`app.observability.tracing`: OpenTelemetry spans and GenAI events, off
  unless the standard ``OTEL_*`` variables are set.
- :mod:`app.observability.logs`: structlog configuration (JSON lines when the
  output is not a terminal).

This layer sits just above the foundation: the API, the CLI and the use
cases record into it, and it imports nothing of theirs (the one number read
from the database, pending pairs per judge, is handed in as a callable).
``judges/`` stays pure and emits through hooks the app side installs.
"""
