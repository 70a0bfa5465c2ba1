"""Counters for ``GET /metrics``, rendered in the Prometheus text exposition format (version 0.0.4).

Recording is two dictionary updates per request, because it sits on the invoke path; rendering
(which also counts actors) happens only when something scrapes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

__all__ = ("HttpMetrics",)


class HttpMetrics:
    """Requests by route and status code, and their total duration by route."""

    __slots__ = ("count", "seconds")

    def __init__(self) -> None:
        self.count: Counter[tuple[str, int]] = Counter()
        self.seconds: dict[str, float] = {}

    def observe(self, route: str, code: int, seconds: float) -> None:
        self.count[route, code] += 1
        self.seconds[route] = self.seconds.get(route, 0.0) + seconds

    def render(
        self,
        *,
        actors: Mapping[str, int],
        user_function: Mapping[str, int],
        draining: bool,
    ) -> str:
        """The exposition text; ``actors`` (gauge) and ``user_function`` (counter) by label."""
        lines: list[str] = []
        _family(
            lines,
            "spawn_lab_http_requests_total",
            "counter",
            "HTTP requests answered, by route and status code.",
            ((f'route="{r}",code="{c}"', n) for (r, c), n in sorted(self.count.items())),
        )
        by_route: Counter[str] = Counter()
        for (route, _), n in self.count.items():
            by_route[route] += n
        _family(
            lines,
            "spawn_lab_http_request_duration_seconds",
            "summary",
            "Time to answer HTTP requests, by route.",
            (),
        )
        for route in sorted(by_route):
            lines.append(
                f'spawn_lab_http_request_duration_seconds_sum{{route="{route}"}} '
                f"{self.seconds.get(route, 0.0):.6f}"
            )
            count = by_route[route]
            lines.append(
                f'spawn_lab_http_request_duration_seconds_count{{route="{route}"}} {count}'
            )
        _family(
            lines,
            "spawn_lab_actors",
            "gauge",
            "Actors of the system, by state.",
            ((f'state="{s}"', n) for s, n in sorted(actors.items())),
        )
        _family(
            lines,
            "spawn_lab_user_function_calls_total",
            "counter",
            "Calls to the remote user function, by outcome.",
            ((f'outcome="{o}"', n) for o, n in sorted(user_function.items())),
        )
        _family(
            lines,
            "spawn_lab_draining",
            "gauge",
            "1 while the server drains before stopping.",
            (("", int(draining)),),
        )
        return "\n".join(lines) + "\n"


def _family(
    lines: list[str], name: str, kind: str, help_text: str, samples: Iterable[tuple[str, int]]
) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
