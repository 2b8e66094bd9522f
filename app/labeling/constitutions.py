"""The constitutions a service can use: the YAML files of its folders, re-read when they change.

The folders are the shipped ``constitutions/`` and the operator's
``REFEREE_CONSTITUTIONS_DIR``, which adds to them (see
:meth:`Settings.constitution_folders`). A file that fails validation, or
two files defining one id, do not take the others down: they are listed
in ``problems`` with their files, and asking for such an id says so.
Labels carry the constitution's content-addressed ref, so a changed file
gives new labels instead of reusing the old ones.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from app.errors import InvalidInputError
from judges.cai.constitutions import Constitution, ConstitutionScan, scan_constitutions


class ConstitutionLibrary:
    """Constitutions by id from some folders; cheap to ask, re-scanned when a file changes."""

    def __init__(self, folders: Path | Sequence[Path]) -> None:
        self.folders = (folders,) if isinstance(folders, Path) else tuple(folders)
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._scan = ConstitutionScan()

    def _stamp_now(self) -> tuple[tuple[str, int, int], ...]:
        stamp: list[tuple[str, int, int]] = []
        for folder in self.folders:
            if folder.is_dir():
                files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
                stamp += ((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        return tuple(stamp)

    def scan(self) -> ConstitutionScan:
        """The folders' constitutions and problems, re-read only when a file changed."""
        stamp = self._stamp_now()
        with self._lock:
            if stamp != self._stamp:
                self._scan, self._stamp = scan_constitutions(*self.folders), stamp
            return self._scan

    def get(self, constitution_id: str) -> Constitution:
        """The constitution with this id; an error lists the known ids and any broken files."""
        scan = self.scan()
        found = scan.constitutions.get(constitution_id)
        if found is not None:
            return found
        known = ", ".join(sorted(scan.constitutions)) or "none"
        problems = "; ".join(problem.message for problem in scan.problems)
        broken = f"; problems: {problems}" if problems else ""
        raise InvalidInputError(
            f"unknown constitution {constitution_id!r}; known: {known}{broken}",
            field="constitution",
        )

    def by_ref(self, ref: str) -> Constitution:
        """The constitution a stored ref names, refusing one whose file has changed since."""
        constitution = self.get(ref.split("@", 1)[0])
        if constitution.ref != ref:
            raise InvalidInputError(
                f"constitution {constitution.id!r} changed since this work was queued "
                f"(queued under {ref}, now {constitution.ref}); queue it again",
                field="constitution",
            )
        return constitution
