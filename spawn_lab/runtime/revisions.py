"""``RevisionHistory``: an actor's stored revisions, readable in a notebook."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator, Sequence

from spawn_lab.stores.base import RevisionInfo

__all__ = ("RevisionHistory",)


class RevisionHistory(Sequence[RevisionInfo]):
    """The revisions of one actor, oldest first; a list with a table for a repr."""

    def __init__(self, actor: str, revisions: list[RevisionInfo]) -> None:
        self.actor = actor
        self._revisions = revisions

    def __getitem__(self, index: int) -> RevisionInfo:  # type: ignore[override]
        return self._revisions[index]

    def __len__(self) -> int:
        return len(self._revisions)

    def __iter__(self) -> Iterator[RevisionInfo]:
        return iter(self._revisions)

    @property
    def numbers(self) -> list[int]:
        return [r.revision for r in self._revisions]

    def __repr__(self) -> str:
        return f"<RevisionHistory {self.actor!r}: revisions {self.numbers}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{r.revision}</td><td>{html.escape(r.status)}</td>"
            f"<td>{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(r.timestamp))}</td>"
            f"<td>{html.escape(r.type_url)}</td></tr>"
            for r in self._revisions
        )
        return (
            f"<div><b>Revisions of {html.escape(self.actor)}</b> ({len(self)})"
            "<table><tr><th>revision</th><th>status</th><th>saved (UTC)</th><th>type</th></tr>"
            f"{rows}</table></div>"
        )
