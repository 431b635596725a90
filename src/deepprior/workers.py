"""Where a batch's images run: in this process, in local worker processes, or on Ray.

Every place runs :func:`restore` on one job and hands back plain data (the encoded result, the
report, or why it failed); the batch's driver alone writes files and the manifest. Local
workers each get their share of the cores, set before PyTorch starts, because two processes
that both size their thread pools to the whole machine each run several times slower.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

from .errors import UserError

Result = dict[str, Any]  # {"state": "done", "output": bytes, "report": {...}} or a failure
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def restore(
    job_data: dict[str, Any], suffix: str = ".png", files: dict[str, bytes] | None = None
) -> Result:
    """Run one job (as :meth:`Job.to_dict` gives it) and return its result, encoded in the
    format ``suffix`` names, as data.

    ``files`` (input name -> the file's bytes) stand in for the job's input paths on a machine
    that cannot read them (a Ray node). A user error (a corrupt or tiny image) is a
    ``failed`` result with its message; so is any other error, with its traceback in
    ``detail``, so that one bad image never ends the batch.
    """
    from .io import write_image
    from .job import Job
    from .runner import run

    with tempfile.TemporaryDirectory(prefix="deepprior-") as folder:
        originals: dict[str, str] = {}  # a local copy's path -> the input's path, for messages
        try:
            if files:
                inputs = dict(job_data["inputs"])
                for name, data in files.items():
                    local = Path(folder) / f"{name}{Path(inputs[name]).suffix}"
                    local.write_bytes(data)
                    originals[str(local)] = inputs[name]
                    inputs[name] = str(local)
                job_data = {**job_data, "inputs": inputs}
            outcome = run(Job.from_dict(job_data))
            if outcome.interrupted:
                return {"state": "interrupted"}
            report = outcome.report.to_dict()
            encoded = write_image(Path(folder) / f"result{suffix}", outcome.picture)
            return {"state": "done", "output": encoded.read_bytes(), "report": report}
        except UserError as error:
            message = str(error)
            for copy, original in originals.items():
                message = message.replace(copy, original)
            return {"state": "failed", "error": message}
        except KeyboardInterrupt:
            return {"state": "interrupted"}
        except Exception as error:  # a bug or an exotic file: reported, the batch goes on
            return {
                "state": "failed",
                "error": f"{type(error).__name__}: {error}",
                "detail": traceback.format_exc(),
            }


def share_cores(threads: int) -> None:
    """Limit this process's PyTorch (and BLAS) to ``threads`` threads; call before torch runs."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set: torch allows it once per process
        torch.set_num_interop_threads(1)


class Executor(Protocol):
    """Runs jobs; :meth:`next_done` blocks until one finishes and returns (name, result)."""

    capacity: int  # how many jobs it runs at once (the driver keeps it this busy)

    def submit(self, name: str, job_data: dict[str, Any], suffix: str) -> None: ...

    def next_done(self) -> tuple[str, Result]: ...

    def close(self, *, cancel: bool) -> None: ...


class InProcess:
    """One job after another in this process, with all its cores."""

    capacity = 1

    def __init__(self) -> None:
        self._waiting: list[tuple[str, dict[str, Any], str]] = []

    def submit(self, name: str, job_data: dict[str, Any], suffix: str) -> None:
        self._waiting.append((name, job_data, suffix))

    def next_done(self) -> tuple[str, Result]:
        name, job_data, suffix = self._waiting.pop(0)
        return name, restore(job_data, suffix)

    def close(self, *, cancel: bool) -> None:
        self._waiting.clear()


def _start_worker(threads: int, devices: Any, parent: int) -> None:
    """A pool worker's first act: its share of the cores (or its GPU), and to end with its
    parent, so that a batch killed with SIGKILL leaves no worker computing on."""
    if devices is not None:
        with contextlib.suppress(queue.Empty):  # a replacement worker: no GPU left to claim
            os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get(timeout=1))
    share_cores(threads)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class LocalPool:
    """``workers`` processes on this machine, ``threads`` cores each (or one GPU each).

    A worker that dies (killed for memory) fails the images it held, which the next run
    retries; the pool is then started afresh for the rest.
    """

    def __init__(self, workers: int, threads: int, gpus: int = 0) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch yet
        devices = None
        if gpus:
            devices = context.Queue()
            for index in range(gpus):
                devices.put(index)
        self.capacity = workers

        def start() -> ProcessPoolExecutor:
            return ProcessPoolExecutor(
                workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(threads, devices, os.getpid()),
            )

        self._start = start
        self._pool = start()
        self._running: dict[Future[Result], str] = {}

    def submit(self, name: str, job_data: dict[str, Any], suffix: str) -> None:
        try:
            future = self._pool.submit(restore, job_data, suffix)
        except BrokenProcessPool:
            self._pool = self._start()
            future = self._pool.submit(restore, job_data, suffix)
        self._running[future] = name

    def next_done(self) -> tuple[str, Result]:
        done, _ = wait(self._running, return_when=FIRST_COMPLETED)
        future = next(iter(done))
        name = self._running.pop(future)
        try:
            return name, future.result()
        except BrokenProcessPool:
            error = "its worker process died (out of memory?); rerun the batch to retry it"
            return name, {"state": "failed", "error": error}

    def close(self, *, cancel: bool) -> None:
        if not cancel:
            self._pool.shutdown()
            return
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # stop the fits under way (Python < 3.14 has no API for it)
            process.terminate()


def _ray_restore(
    job_data: dict[str, Any], suffix: str, files: dict[str, bytes], threads: int
) -> Result:
    share_cores(threads)
    return restore(job_data, suffix, files)


class RayCluster:
    """Each image a Ray task asking for ``threads`` CPUs (or one GPU); the inputs travel as
    bytes and the results come back as bytes, so the nodes need no shared file system."""

    def __init__(self, address: str, threads: int, gpus: int) -> None:
        try:
            import ray
        except ImportError:
            raise UserError(
                "--ray needs Ray, which is not installed; pip install 'deepprior[ray]'"
            ) from None
        self._ray = ray
        self._started = address == "local"
        try:
            if self._started:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise UserError(
                f"could not reach the Ray cluster at {address} ({error}); start one with "
                "'ray start --head' or use --ray local"
            ) from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = max(1, cpus // threads) if not gpus else max(1, gpus)
        self._threads = threads
        remote: Any = ray.remote
        self._task = remote(num_cpus=threads, num_gpus=1 if gpus else 0)(_ray_restore)
        self._running: dict[Any, str] = {}

    def submit(self, name: str, job_data: dict[str, Any], suffix: str) -> None:
        files = {key: Path(path).read_bytes() for key, path in job_data["inputs"].items()}
        reference = self._task.remote(job_data, suffix, files, self._threads)
        self._running[reference] = name

    def next_done(self) -> tuple[str, Result]:
        ready, _ = self._ray.wait(list(self._running), num_returns=1)
        name = self._running.pop(ready[0])
        try:
            return name, self._ray.get(ready[0])
        except self._ray.exceptions.RayError as error:
            return name, {"state": "failed", "error": f"the Ray task failed: {error}"}

    def close(self, *, cancel: bool) -> None:
        if cancel:
            for reference in self._running:
                self._ray.cancel(reference, force=True)
        self._running.clear()
        self._ray.shutdown()
