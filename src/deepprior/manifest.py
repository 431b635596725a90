"""A batch's manifest: one SQLite file in the output folder, the state of every image.

Only the process that drives a batch writes it (workers return their results to it), so one
connection and short transactions suffice. An image's state moves ``pending`` -> ``running``
-> ``done`` or ``failed``; ``skipped`` marks a file that is not an image. A rerun of the same
batch takes up every image that is not done: the failed ones, and those a killed batch left
``running`` or ``pending``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import UserError

FILE_NAME = "manifest.sqlite"
STATES = ("pending", "running", "done", "failed", "skipped")
SCHEMA_VERSION = 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    name TEXT PRIMARY KEY,           -- the input's path relative to the batch's INPUT
    input TEXT NOT NULL,             -- absolute path
    output TEXT NOT NULL,            -- absolute path of the result
    report TEXT NOT NULL,            -- absolute path of its run report
    state TEXT NOT NULL CHECK (state IN ({", ".join(f"'{s}'" for s in STATES)})),
    seed INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,                 -- Unix time of the last attempt's start
    finished_at REAL,
    seconds REAL,                    -- the run's own wall time (from its report)
    steps INTEGER,
    psnr REAL,
    ssim REAL,
    error TEXT,                      -- one line: why it failed or was skipped
    job TEXT                         -- the job (JSON) of the last attempt
);
"""


@dataclass(frozen=True)
class Entry:
    """One image's row."""

    name: str
    input: Path
    output: Path
    report: Path
    state: str
    seed: int | None
    attempts: int
    seconds: float | None
    steps: int | None
    psnr: float | None
    ssim: float | None
    error: str | None


class Manifest:
    """The manifest of the batch in ``folder`` (created when missing)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE_NAME
        self._lock_file: BinaryIO | None = None
        try:
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise UserError(
                f"{self.path} is not a deepprior manifest ({error}); move it away or choose "
                "another output folder"
            ) from None

    def lock(self) -> None:
        """Make this process the folder's only batch (until :meth:`close`): two at once would
        take each other's running images for cut-off ones and make them twice."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; one batch per folder by hand
            return
        self._lock_file = self.path.open("rb")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another batch is writing into {self.path.parent}; wait for it to finish"
            ) from None

    def close(self) -> None:
        self._db.close()
        if self._lock_file is not None:
            self._lock_file.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db:
            yield self._db

    def claim(self, settings: dict[str, Any]) -> None:
        """Record the batch's settings, or check that they are the ones recorded.

        A folder holds one batch: its outputs were made with one set of settings, so a rerun
        with others (another task, quality, scale...) is refused rather than mixed in.
        """
        wanted = json.dumps(settings, sort_keys=True)
        row = self._db.execute("SELECT value FROM settings WHERE key = 'batch'").fetchone()
        if row is None:
            with self._transaction() as db:
                db.execute("INSERT INTO settings VALUES ('batch', ?)", (wanted,))
                db.execute(
                    "INSERT OR REPLACE INTO settings VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            return
        recorded = json.loads(row[0])
        if recorded != settings:
            changed = sorted(
                key
                for key in set(recorded) | set(settings)
                if recorded.get(key) != settings.get(key)
            )
            first = changed[0]
            raise UserError(
                f"{self.path.parent} holds a batch made with other settings ({first}: "
                f"{recorded.get(first)!r}, now {settings.get(first)!r}); rerun it as it was, "
                "or write this one to another folder"
            )

    def add(
        self,
        name: str,
        *,
        input: Path,
        output: Path,
        report: Path,
        seed: int | None,
        skipped: str | None = None,
    ) -> None:
        """Add an image not seen before (a rerun keeps the rows it finds, and their seeds)."""
        state, error = ("skipped", skipped) if skipped else ("pending", None)
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO images (name, input, output, report, state, seed, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, str(input), str(output), str(report), state, seed, error),
            )

    def start(self, name: str, job: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE images SET state = 'running', attempts = attempts + 1, started_at = ?, "
                "finished_at = NULL, error = NULL, job = ? WHERE name = ?",
                (time.time(), json.dumps(job), name),
            )

    def finish(self, name: str, report: dict[str, Any]) -> None:
        metrics = report.get("metrics") or {}
        with self._transaction() as db:
            db.execute(
                "UPDATE images SET state = 'done', finished_at = ?, seconds = ?, steps = ?, "
                "psnr = ?, ssim = ?, error = NULL WHERE name = ?",
                (
                    time.time(),
                    report.get("seconds_total"),
                    report.get("steps_run"),
                    metrics.get("psnr"),
                    metrics.get("ssim"),
                    name,
                ),
            )

    def fail(self, name: str, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE images SET state = 'failed', finished_at = ?, error = ? WHERE name = ?",
                (time.time(), error, name),
            )

    def release(self, name: str) -> None:
        """An attempt cut off (Ctrl-C, a dead worker): back to pending, retried next time."""
        with self._transaction() as db:
            db.execute("UPDATE images SET state = 'pending' WHERE name = ?", (name,))

    def entries(self) -> list[Entry]:
        rows = self._db.execute(
            "SELECT name, input, output, report, state, seed, attempts, seconds, steps, psnr, "
            "ssim, error FROM images ORDER BY name"
        ).fetchall()
        return [Entry(name, Path(i), Path(o), Path(r), *rest) for name, i, o, r, *rest in rows]
