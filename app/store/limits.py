"""The largest values the store's columns hold, read from the models themselves.

Input models bound their fields with these, so a value that would fail an
insert fails validation first: before any model call is paid for, and with
a 4xx naming the field instead of a 500 after the calls. Reading them from
the column definitions keeps one source: widen a column (and migrate) and
the API accepts the longer value.
"""

from __future__ import annotations

from sqlalchemy import String

from app.store.models import Base

# Every table read below is one of app.store.models' (a table of another models
# module needs that module imported here): the whole schema's modules would cost
# every command that validates input their import, ``referee label`` included.
metadata = Base.metadata

INT32_MAX = 2**31 - 1
"""``Integer`` columns are 32-bit on PostgreSQL."""
INT64_MAX = 2**63 - 1
"""``BigInteger`` ids (cursors over them) are 64-bit."""


def column_length(table: str, column: str) -> int:
    """The declared length of a ``String(n)`` column."""
    kind = metadata.tables[table].c[column].type
    if not isinstance(kind, String) or kind.length is None:
        raise TypeError(f"{table}.{column} is not a String(n) column")
    return kind.length


EXTERNAL_ID = column_length("comparisons", "external_id")
"""A caller's id for a pair or item (comparisons, ratings, revisions, gold labels)."""
JUDGE_SPEC = column_length("comparisons", "judge_spec")
"""A judge as a caller names it (``provider:model``, a name, an inline jury)."""
CONSTITUTION_ID = column_length("revisions", "constitution_id")
PRINCIPLE_ID = column_length("revisions", "principle")
SEED = column_length("revisions", "seed")
RUBRIC_NAME = column_length("ratings", "rubric")
BATCH_NAME = column_length("batches", "name")
FEEDBACK_TEXT = column_length("feedback", "source")
"""source, user_id and session_id of a feedback record."""
IDEMPOTENCY_KEY = column_length("feedback", "idempotency_key")
REVIEWER = column_length("gold_labels", "reviewer")
