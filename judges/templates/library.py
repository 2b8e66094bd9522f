"""The templates this process serves: made in code, or read from folders and re-read on change."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from judges.errors import JudgeConfigError
from judges.templates.files import TemplateScan, default_templates_dir, scan_templates
from judges.templates.model import PairwiseTemplate

DEFAULT_TEMPLATE = "pairwise-v1"

TEMPLATES: dict[str, PairwiseTemplate] = {}
"""Templates made in code (plugins, tests), by ref; looked up before the files."""


class _Library:
    """The folders' templates, re-read when a file changes.

    Whether one changed is checked (a stat per file) at most once every
    ``RECHECK_S``: every call and every screened line looks a template up,
    and a stat of each file each time cost more than the rest of screening.
    """

    RECHECK_S = 1.0

    def __init__(self) -> None:
        self.folders: tuple[Path, ...] = (default_templates_dir(),)
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._scan = TemplateScan()
        self._checked = -math.inf

    def scan(self) -> TemplateScan:
        now = time.monotonic()
        if now - self._checked < self.RECHECK_S and self._stamp is not None:
            return self._scan
        self._checked = now
        stamp: list[tuple[str, int, int]] = []
        for folder in self.folders:
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if path.suffix in (".yaml", ".yml"):
                        stamp.append(_stamp(path))
        with self._lock:
            if tuple(stamp) != self._stamp:
                self._scan, self._stamp = scan_templates(*self.folders), tuple(stamp)
            return self._scan


def _stamp(path: Path) -> tuple[str, int, int]:
    """What tells a file changed; one that cannot be read (a dangling link) is rescanned to
    report it, not an error here."""
    try:
        info = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), info.st_mtime_ns, info.st_size)


_LIBRARY = _Library()


def use_template_folders(folders: Sequence[Path]) -> None:
    """Serve the templates of these folders (the service's start-up sets them from settings)."""
    _LIBRARY.folders = tuple(folders)
    _LIBRARY._stamp = None
    _LIBRARY._checked = -math.inf


def template_scan() -> TemplateScan:
    """The templates and named criteria this process serves, and the problems of its files."""
    return _LIBRARY.scan()


def get_template(name: str) -> PairwiseTemplate:
    """A template by ref (what a verdict stores) or by id (its current file).

    A ref whose file has changed since is refused: work queued under some
    words is never judged under others.
    """
    if name in TEMPLATES:
        return TEMPLATES[name]
    scan = template_scan()
    found = scan.by_ref(name) or scan.templates.get(name)
    if found is not None:
        return found
    base = name.split("@", 1)[0]
    if "@" in name and base in scan.templates:
        raise JudgeConfigError(
            f"template {base!r} changed since this work was queued (queued under {name}, "
            f"now {scan.templates[base].ref}); queue it again"
        )
    if not scan.templates and not scan.problems and not TEMPLATES:
        raise JudgeConfigError(
            f"unknown prompt template {name!r}: no folder of templates is served (an install "
            "without the templates/ folder beside the code needs REFEREE_TEMPLATES_DIR set to a "
            "copy of it)"
        )
    known = ", ".join(sorted([*scan.templates, *TEMPLATES])) or "none"
    broken = "; ".join(p.message for p in scan.problems)
    raise JudgeConfigError(
        f"unknown prompt template {name!r}; known: {known}"
        + (f"; problems: {broken}" if broken else "")
    )


def template_ref(name: str) -> str:
    """The ref a template name (id or ref) stands for now."""
    return get_template(name).ref
