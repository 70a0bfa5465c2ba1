"""``ProtoCompileError``: proto text that protoc refuses, with every problem's line and column."""

from __future__ import annotations

from dataclasses import dataclass

from spawn_lab.core.errors import SpawnLabError

__all__ = ("ProtoCompileError", "ProtoIssue")


@dataclass(frozen=True, slots=True)
class ProtoIssue:
    """One protoc complaint. ``line`` and ``column`` count from 1; None when protoc gives none."""

    file: str
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.message}"


class ProtoCompileError(SpawnLabError):
    """protoc refused the proto text. ``issues`` lists every problem; the first is the headline.

    The message quotes the offending source line with a caret under the column, so a notebook
    user sees where to look without counting lines.
    """

    def __init__(self, issues: tuple[ProtoIssue, ...], sources: dict[str, str]) -> None:
        self.issues = issues
        self._sources = sources
        first = issues[0]
        self.file, self.line, self.column = first.file, first.line, first.column
        lines = [str(first), *_excerpt(first, sources)]
        lines += [f"also: {issue}" for issue in issues[1:]]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[type[ProtoCompileError], tuple[object, ...]]:
        """Picklable (the default would call ``__init__`` with the message alone)."""
        return type(self), (self.issues, self._sources)

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the error is in the cell, not in our code."""
        return [f"ProtoCompileError: {self}"]


def _excerpt(issue: ProtoIssue, sources: dict[str, str]) -> list[str]:
    """The source line of ``issue`` and a caret under its column (empty if unknown)."""
    text = sources.get(issue.file)
    if text is None or issue.line is None:
        return []
    source_lines = text.splitlines()
    if not 1 <= issue.line <= len(source_lines):
        return []
    gutter = f"{issue.line:>4} | "
    column = max(issue.column or 1, 1)
    return [gutter + source_lines[issue.line - 1], " " * (len(gutter) + column - 1) + "^"]
