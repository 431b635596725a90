"""The task table: one entry per task; :func:`deepprior.runner.run` executes any of them.

Adding a task means adding a module with its :class:`Task` entry (how its problem is built,
finished and measured) and its presets, and listing it here.
"""

from __future__ import annotations

from ..errors import UserError
from .base import Problem, Task, load_picture
from .denoise import DENOISE
from .features import INVERT, MAXIMIZE
from .flash import FLASH
from .inpaint import INPAINT
from .restore import RESTORE
from .sr import SCALES, SUPER_RESOLVE

TASKS: dict[str, Task] = {
    task.name: task for task in (DENOISE, SUPER_RESOLVE, INPAINT, RESTORE, FLASH, INVERT, MAXIMIZE)
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["SCALES", "TASKS", "Problem", "Task", "get_task", "load_picture"]
