"""Trace ids on stored model calls (issue 21).

A call made while tracing is on keeps the OpenTelemetry trace id of its
span, so a stored call leads to its trace and back: a judge call
(:class:`~app.store.models.JudgeCall`, migration 0020) and a generation
sample, the policy call that drew it
(:class:`~app.store.models_generation.GenerationSample`, migration 0023).
The columns are added here, beside the migrations that add them, rather
than in the core models modules; importing this module (as
:mod:`app.store.schema` and the writers do) maps them.
"""

from __future__ import annotations

from sqlalchemy import Column, String

from app.store.models import JudgeCall
from app.store.models_generation import GenerationSample

TRACE_ID_CHARS = 32
"""A W3C trace id: 16 bytes as lower-case hex."""

trace_id = Column("trace_id", String(TRACE_ID_CHARS), nullable=True)
"""The trace of the call's span; null when tracing was off (or for a provider-batch call)."""

# Declarative maps a column set on a mapped class after the fact: the table
# gains it and JudgeCall.trace_id becomes a mapped attribute.
JudgeCall.trace_id = trace_id

sample_trace_id = Column("trace_id", String(TRACE_ID_CHARS), nullable=True)
"""The trace of the policy call that drew the sample (its last attempt); null when tracing
was off, or for a sample drawn through a provider's batch API."""

GenerationSample.trace_id = sample_trace_id
