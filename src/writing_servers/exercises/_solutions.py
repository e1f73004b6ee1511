"""Reference solutions on request: ``solution(2)`` in a notebook shows exercise 2, solved.

Each module in :mod:`writing_servers.solutions` lists its exercises in
order in ``EXERCISES`` (number: the classes and functions that solve it) and
says in ``WHY`` (number: a sentence or two) why the solution works.
"""

from __future__ import annotations

import html
import importlib
import inspect
from collections.abc import Callable
from types import ModuleType

__all__ = ["Solution", "solution_for"]


class Solution:
    """One exercise's reference solution: the code to compare with, and why it works."""

    def __init__(self, section: str, number: int, code: str, why: str) -> None:
        self.section = section
        self.number = number
        self.code = code
        self.why = why

    @property
    def heading(self) -> str:
        return f"Exercise {self.number}, solved"

    def __repr__(self) -> str:
        return f"{self.heading}\n\n{self.code}\n\nWhy it works: {self.why}"

    def _repr_markdown_(self) -> str:
        return f"**{self.heading}**\n\n```python\n{self.code}\n```\n\n**Why it works:** {self.why}"

    def _repr_html_(self) -> str:
        # JupyterLab prefers HTML; without this it would show the markdown's source in some front ends.
        return (
            f"<p><strong>{html.escape(self.heading)}</strong></p>"
            f"<pre><code>{html.escape(self.code)}</code></pre>"
            f"<p><strong>Why it works:</strong> {html.escape(self.why)}</p>"
        )


def _module(section: str) -> ModuleType:
    return importlib.import_module(f"writing_servers.solutions.{section}")


def solution_for(section: str) -> Callable[[int], Solution]:
    """The ``solution(number)`` function for notebook *section*'s exercises (``"protocols"``, …)."""

    def solution(number: int) -> Solution:
        module = _module(section)
        exercises: dict[int, tuple[object, ...]] = module.EXERCISES
        if number not in exercises:
            numbers = ", ".join(str(n) for n in sorted(exercises))
            raise ValueError(
                f"this notebook's exercises are numbered {numbers}; there is no exercise {number}"
            )
        code = "\n\n\n".join(inspect.getsource(item).rstrip() for item in exercises[number])  # type: ignore[arg-type]
        return Solution(section, number, code, module.WHY[number])

    solution.__doc__ = "Show the reference solution to exercise *number* of this notebook, and why it works."
    return solution
