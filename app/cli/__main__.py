"""``python -m app.cli``: the ``referee`` command without the installed script."""

from app.cli import main

main()
