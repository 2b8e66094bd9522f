"""``python -m app.cli``: the ``referee`` command without the installed script."""

import gc

# Paused before app.cli's own imports, not only in main(): see app.cli.pause_collector.
gc.disable()

from app.cli import main  # noqa: E402

main()
