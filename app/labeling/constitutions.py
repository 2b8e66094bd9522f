"""The constitutions a service can use: the YAML files of one folder, re-read when they change.

A file that fails validation does not take the others down: it is listed
in ``problems`` with its file, principle and field, and asking for its id
says so. Labels carry the constitution's content-addressed ref, so a
changed file gives new labels instead of reusing the old ones.
"""

from __future__ import annotations

import threading
from pathlib import Path

from app.errors import InvalidInputError
from judges.constitutions import Constitution, ConstitutionScan, scan_constitutions


class ConstitutionLibrary:
    """Constitutions by id from one folder; cheap to ask, re-scanned when a file changes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._scan = ConstitutionScan()

    def _stamp_now(self) -> tuple[tuple[str, int, int], ...]:
        if not self.folder.is_dir():
            return ()
        files = sorted(p for p in self.folder.iterdir() if p.suffix in (".yaml", ".yml"))
        return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)

    def scan(self) -> ConstitutionScan:
        """The folder's constitutions and problems, re-read only when a file changed."""
        stamp = self._stamp_now()
        with self._lock:
            if stamp != self._stamp:
                self._scan, self._stamp = scan_constitutions(self.folder), stamp
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
