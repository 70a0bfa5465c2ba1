"""What every panel needs: a visible error pane, guarded callbacks, background work, JSON fields.

In JupyterLab an exception raised in a widget callback goes to the log console, where nobody
looks (env-notes §3). So every callback the lab registers is wrapped by :meth:`ErrorPane.guard`
and every background job reports through :meth:`ErrorPane.report`: a failure is always on
screen, with its traceback. Blocking work (an ask, a step, run-to-idle) runs on a small thread
pool, because a widget callback runs on the kernel's own thread and must return at once.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from spawn_lab.core.model import NOOP

__all__ = ("Background", "ErrorPane", "parse_json", "pretty")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class ErrorPane:
    """A titled ``Output`` that collects every error of the lab's callbacks and threads."""

    def __init__(self) -> None:
        import ipywidgets as widgets

        self.errors: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.title = widgets.HTML(self._title())
        self.output = widgets.Output(
            layout=widgets.Layout(max_height="160px", overflow="auto", border="1px solid #e5b5b5")
        )
        self.output.layout.display = "none"
        clear = widgets.Button(description="Clear errors", layout=widgets.Layout(width="120px"))
        clear.on_click(lambda _: self.clear())
        self.widget = widgets.VBox([widgets.HBox([self.title, clear]), self.output])
        self.widget.add_class("spawn-lab-errors")

    def report(self, where: str, exc: BaseException) -> None:
        """Show ``exc`` with its traceback (thread-safe: ``append_stderr`` needs no cell)."""
        text = "".join(traceback.format_exception(exc))
        with self._lock:
            self.errors.append((where, text))
            self.title.value = self._title()
        self.output.layout.display = None
        self.output.append_stderr(f"[{where}] {text}\n")

    def guard(self, where: str) -> Callable[[F], F]:
        """Decorator for widget callbacks: any exception lands in this pane, never in a log."""

        def wrap(fn: F) -> F:
            @functools.wraps(fn)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    self.report(where, exc)
                    return None

            return guarded  # type: ignore[return-value]

        return wrap

    def clear(self) -> None:
        with self._lock:
            self.errors.clear()
            self.title.value = self._title()
        self.output.clear_output()
        self.output.layout.display = "none"

    def _title(self) -> str:
        count = len(self.errors)
        color = "#b00000" if count else "#2a7a2a"
        text = f"{count} error{'s' if count != 1 else ''}" if count else "no errors"
        return f"<b style='color:{color}'>Errors: {html.escape(text)}</b>"


class Background:
    """Runs blocking calls off the kernel thread; results and errors come back by callback."""

    def __init__(self, errors: ErrorPane, *, workers: int = 2) -> None:
        self.errors = errors
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="spawn-lab-ui")
        self.futures: list[Future[Any]] = []

    def run(
        self,
        where: str,
        fn: Callable[[], T],
        done: Callable[[T], None] | None = None,
        failed: Callable[[BaseException], None] | None = None,
    ) -> Future[T]:
        """Call ``fn()`` on the pool; then ``done(result)`` or ``failed(exc)`` there too.

        A failure is always reported to the error pane as well, so nothing goes unseen.
        """

        def job() -> T:
            try:
                result = fn()
            except Exception as exc:
                self.errors.report(where, exc)
                if failed is not None:
                    self._safely(where, failed, exc)
                raise
            if done is not None:
                self._safely(where, done, result)
            return result

        future = self._pool.submit(job)
        self.futures = [f for f in self.futures if not f.done()] + [future]
        return future

    def wait(self, timeout: float = 10.0) -> None:
        """Wait for every job started so far (tests, and before closing)."""
        for future in list(self.futures):
            with contextlib.suppress(Exception):  # failures were reported by the job itself
                future.result(timeout)

    def _safely(self, where: str, callback: Callable[[Any], None], value: Any) -> None:
        try:
            callback(value)
        except Exception as exc:
            self.errors.report(f"{where} (after)", exc)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def parse_json(text: str, what: str) -> Any:
    """A JSON field's value; empty means Noop. Errors name the field and the position."""
    text = text.strip()
    if not text:
        return NOOP
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None


def pretty(value: object, limit: int = 20_000) -> str:
    """Readable, escaped JSON (or repr) for a ``<pre>`` block."""
    if value is NOOP:
        return "Noop"
    try:
        text = json.dumps(value, indent=2, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text)
