"""The web server's jobs on disk: a SQLite table in the work folder and one folder per job.

Jobs are served in order of arrival (``seq``). The table and the folders outlive the server:
at start, a job that was running when the server stopped waits again, so the queue resumes.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "done", "failed", "stopped")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- order of arrival
    id TEXT UNIQUE NOT NULL,                 -- random; names the job's folder
    task TEXT NOT NULL,
    state TEXT NOT NULL,
    job TEXT NOT NULL,                       -- the deepprior Job (JSON)
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    steps INTEGER,
    error TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class Record:
    id: str
    task: str
    state: str
    job: dict[str, Any]
    created: float
    started: float | None
    finished: float | None
    steps: int | None
    error: str | None
    stop_requested: bool


class Store:
    """Thread-safe access to the jobs table (the server's threads share one connection)."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.jobs_dir = work_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(work_dir / "jobs.sqlite", check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.executescript(_SCHEMA)
            self._db.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'")

    def new_id(self) -> str:
        return secrets.token_hex(8)

    def folder(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def add(self, job_id: str, task: str, job: dict[str, Any]) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO jobs (id, task, state, job, created) VALUES (?, ?, 'queued', ?, ?)",
                (job_id, task, json.dumps(job), time.time()),
            )

    def get(self, job_id: str) -> Record | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, task, state, job, created, started, finished, steps, error, "
                "stop_requested FROM jobs WHERE id = ?",
                (job_id,),
            ).fetchone()
        if row is None:
            return None
        job_id, task, state, job, created, started, finished, steps, error, stop = row
        return Record(
            job_id,
            task,
            state,
            json.loads(job),
            created,
            started,
            finished,
            steps,
            error,
            bool(stop),
        )

    def next_queued(self) -> Record | None:
        """The oldest queued job, now marked running."""
        with self._lock, self._db:
            row = self._db.execute(
                "SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE jobs SET state = 'running', started = ? WHERE id = ?", (time.time(), row[0])
            )
        return self.get(row[0])

    def position(self, job_id: str) -> int:
        """How many queued jobs are ahead of this one."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND seq < "
                "(SELECT seq FROM jobs WHERE id = ?)",
                (job_id,),
            ).fetchone()
        return int(row[0])

    def finish(self, job_id: str, state: str, *, steps: int | None, error: str | None) -> None:
        with self._lock, self._db:
            self._db.execute(
                "UPDATE jobs SET state = ?, finished = ?, steps = ?, error = ? WHERE id = ?",
                (state, time.time(), steps, error, job_id),
            )

    def request_stop(self, job_id: str) -> str | None:
        """Stop a job: a queued one at once; a running one at its next step. Its state after."""
        with self._lock, self._db:
            row = self._db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if row[0] == "queued":
                self._db.execute(
                    "UPDATE jobs SET state = 'stopped', finished = ? WHERE id = ?",
                    (time.time(), job_id),
                )
                return "stopped"
            if row[0] == "running":
                self._db.execute("UPDATE jobs SET stop_requested = 1 WHERE id = ?", (job_id,))
            return str(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
