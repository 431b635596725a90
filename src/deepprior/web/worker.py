"""The server's one worker: runs the queued jobs one at a time, in order of arrival.

While a job runs, its step, loss (and PSNR, when known) history and a preview of the current
result are published for the page; a stop request ends the fit at its next step and keeps its
best result so far, as Ctrl-C does on the command line.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fitting import Callback, FitState
from ..io import Picture, atomic_write, write_image
from ..job import Job
from .store import Record, Store

HISTORY_EVERY = 5  # steps between two points of the live curve
PREVIEW_EVERY = 10  # steps between two previews (and at most two a second)


class Live(Callback):
    """Publishes the fit's progress into ``live`` and ends it when ``stop`` is set."""

    def __init__(self, live: dict[str, Any], stop: threading.Event) -> None:
        self.live = live
        self.stop = stop

    def on_step(self, state: FitState) -> None:
        step = state.step + 1
        self.live["step"] = step
        if step == 1 or step % HISTORY_EVERY == 0:
            point = {"step": step, "loss": float(state.loss)}
            if "psnr" in state.metrics:
                point["psnr"] = float(state.metrics["psnr"])
            self.live["history"].append(point)
        if self.stop.is_set():  # as Ctrl-C: also no further runs of a multi-run job
            state.stop = state.interrupted = True


class Worker(threading.Thread):
    """Takes the oldest queued job, runs it, writes its result and report, and so on."""

    def __init__(self, store: Store) -> None:
        super().__init__(name="deepprior-worker", daemon=True)
        self.store = store
        self.live: dict[str, dict[str, Any]] = {}
        self.wake = threading.Event()
        self._closing = threading.Event()
        self._stops: dict[str, threading.Event] = {}

    def stop_job(self, job_id: str) -> None:
        if job_id in self._stops:
            self._stops[job_id].set()

    def close(self) -> None:
        """Take no more jobs. A job still running dies with the process (this thread is a
        daemon) and stays ``running`` in the store, so the next server runs it again."""
        self._closing.set()
        self.wake.set()

    def run(self) -> None:
        while not self._closing.is_set():
            record = self.store.next_queued()
            if record is None:
                self.wake.wait(0.5)
                self.wake.clear()
                continue
            self._run(record)

    def _run(self, record: Record) -> None:
        from ..runner import run

        folder = self.store.folder(record.id)
        live: dict[str, Any] = {"step": 0, "history": []}
        self.live[record.id] = live
        stop = self._stops.setdefault(record.id, threading.Event())
        if record.stop_requested:
            stop.set()
        last_preview = [0.0]

        def preview(step: int, picture: Picture) -> None:
            if time.monotonic() - last_preview[0] >= 0.5:
                write_image(folder / "preview.png", picture, force=True)
                last_preview[0] = time.monotonic()

        try:
            outcome = run(
                Job.from_dict(record.job),
                callbacks=[Live(live, stop)],
                save_every=PREVIEW_EVERY,
                save=preview,
            )
            report = outcome.report.to_dict()
            text = json.dumps(report, indent=2)
            atomic_write(folder / "report.json", lambda path: path.write_text(text))
            if report["steps_run"]:
                write_image(folder / "result.png", outcome.picture, force=True)
            state = "stopped" if stop.is_set() or outcome.interrupted else "done"
            self.store.finish(record.id, state, steps=report["steps_run"], error=None)
        except UserError as error:
            self.store.finish(record.id, "failed", steps=live["step"], error=str(error))
        except Exception as error:  # a bug: the job fails with its message; the server goes on
            print(traceback.format_exc(), file=sys.stderr)
            message = f"internal error: {type(error).__name__}: {error}"
            self.store.finish(record.id, "failed", steps=live["step"], error=message)
        finally:
            self._stops.pop(record.id, None)
            self.live.pop(record.id, None)


def saved_history(folder: Path) -> list[dict[str, Any]]:
    """A finished job's loss/PSNR history, from its report."""
    try:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return list(report.get("history") or [])
