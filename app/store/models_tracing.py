"""Trace ids on stored model calls (issue 21).

A call made while tracing is on keeps the OpenTelemetry trace id of its
span, so a stored call leads to its trace and back. The column is added to
:class:`~app.store.models.JudgeCall` here, beside the migration that adds
it, rather than in the core models module; importing this module (as
:mod:`app.store.schema` and the call writer do) maps it.
"""

from __future__ import annotations

from sqlalchemy import Column, String

from app.store.models import JudgeCall

TRACE_ID_CHARS = 32
"""A W3C trace id: 16 bytes as lower-case hex."""

trace_id = Column("trace_id", String(TRACE_ID_CHARS), nullable=True)
"""The trace of the call's span; null when tracing was off (or for a provider-batch call)."""

# Declarative maps a column set on a mapped class after the fact: the table
# gains it and JudgeCall.trace_id becomes a mapped attribute.
JudgeCall.trace_id = trace_id
