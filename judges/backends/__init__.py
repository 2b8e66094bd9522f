"""Judge backends, one module a provider: ``anthropic``, ``openai`` (and compatible), ``local``.

Each registers through the ``referee.judges`` entry points in ``pyproject.toml``,
as a third-party backend would. Modules starting with ``_`` are their shared helpers.
"""
