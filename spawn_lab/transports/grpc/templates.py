"""``google.api.http`` path templates (``/v1/{name=shelves/*}/books/{id}:publish``) as regexes.

Grammar (google/api/http.proto)::

    Template = "/" Segments [ Verb ] ;   Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;   Verb = ":" LITERAL ;

A template becomes a regex over the raw (still percent-encoded) path, with one group per
variable, and an aiohttp path that routes the same requests to a handler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from spawn_lab.core.errors import RegistrationError

__all__ = ("PathTemplate", "parse_template")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_LITERAL = re.compile(r"^[^/{}*:]+$")
_ONE = "[^/]+"
_MANY = ".+"


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A parsed template: ``regex`` (one group per field in ``fields``) and ``aiohttp_path``."""

    template: str
    regex: re.Pattern[str]
    fields: tuple[str, ...]
    aiohttp_path: str

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Field path to decoded value, or None if ``raw_path`` does not match."""
        found = self.regex.fullmatch(raw_path)
        if found is None:
            return None
        return {
            field: unquote(value) for field, value in zip(self.fields, found.groups(), strict=True)
        }


def parse_template(template: str) -> PathTemplate:
    """Parse ``template``; a RegistrationError names the template and what is wrong with it."""
    if not template.startswith("/"):
        raise RegistrationError(f"HTTP path template {template!r} must start with '/'")
    body, verb = _split_verb(template)
    fields: list[str] = []
    regex_parts: list[str] = []
    route_parts: list[str] = []
    for segment in _segments(body[1:], template):
        if segment.startswith("{"):
            field, _, inner = segment[1:-1].partition("=")
            if not _IDENT.match(field):
                raise RegistrationError(f"HTTP path template {template!r}: bad field {field!r}")
            pattern = (
                "/".join(_segment_regex(s, template) for s in inner.split("/")) if inner else _ONE
            )
            fields.append(field)
            regex_parts.append(f"({pattern})")
            route_parts.append(f"{{_{len(fields)}:{pattern}}}")
        else:
            pattern = _segment_regex(segment, template)
            regex_parts.append(pattern)
            route_parts.append(
                f"{{_w{len(route_parts)}:{pattern}}}" if segment in ("*", "**") else segment
            )
    suffix = f":{verb}" if verb else ""
    regex = re.compile("/" + "/".join(regex_parts) + re.escape(suffix))
    return PathTemplate(template, regex, tuple(fields), "/" + "/".join(route_parts) + suffix)


def _split_verb(template: str) -> tuple[str, str]:
    """``/v1/{name}:cancel`` -> (``/v1/{name}``, ``cancel``); colons inside braces do not count."""
    depth = 0
    for index in range(len(template) - 1, -1, -1):
        char = template[index]
        if char == "}":
            depth += 1
        elif char == "{":
            depth -= 1
        elif char == "/" and depth == 0:
            break
        elif char == ":" and depth == 0:
            verb = template[index + 1 :]
            if not _LITERAL.match(verb):
                raise RegistrationError(f"HTTP path template {template!r}: bad verb {verb!r}")
            return template[:index], verb
    return template, ""


def _segments(body: str, template: str) -> list[str]:
    """Split on '/' outside braces."""
    out: list[str] = []
    depth = 0
    current = ""
    for char in body:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise RegistrationError(f"HTTP path template {template!r}: unbalanced '}}'")
        if char == "/" and depth == 0:
            out.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise RegistrationError(f"HTTP path template {template!r}: unbalanced '{{'")
    out.append(current)
    for segment in out:
        if not segment:
            raise RegistrationError(f"HTTP path template {template!r} has an empty segment")
        if segment.startswith("{") != segment.endswith("}"):
            raise RegistrationError(
                f"HTTP path template {template!r}: segment {segment!r} mixes text and a variable"
            )
    return out


def _segment_regex(segment: str, template: str) -> str:
    if segment == "*":
        return _ONE
    if segment == "**":
        return _MANY
    if not _LITERAL.match(segment):
        raise RegistrationError(f"HTTP path template {template!r}: bad segment {segment!r}")
    return re.escape(segment)
