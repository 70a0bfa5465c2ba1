"""Calling a remote SDK's user function: the proxy's half of ``POST /api/v1/actors/actions``.

:class:`RemoteHost` is the host of every actor a Spawn SDK registers. The driver awaits
``call_async(run, ctx)``; it sends an ``ActorInvocation`` built as §4.5 says and turns the
``ActorInvocationResponse`` into a :class:`~spawn_lab.core.model.Value` as §4.6 says, with the
intended behaviour of D8 (no tags keeps the tags) and D9 (state updates always kept).

Failures are bounded (intended D7): only transport errors (no connection, connection dropped) are
retried, twice, with a short backoff; an answer that is not a usable ActorInvocationResponse, or
none within the timeout, fails that one invocation at once. A user function found unreachable is
taken as down for a second: calls meanwhile fail at once instead of each waiting out the retries
(an actor's queued messages would otherwise wait behind one another's). Each call touches only
its own actor, so a dead user function never blocks anybody else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from google.protobuf.message import DecodeError

from spawn_lab.core.errors import (
    InvocationTimeoutError,
    PayloadError,
    ProtocolError,
    RemoteProtocolError,
    SystemStateError,
)
from spawn_lab.core.model import Value
from spawn_lab.protocol import codec, legacy
from spawn_lab.protocol.spawn.actors import protocol_pb2

if TYPE_CHECKING:
    from spawn_lab.core.effects import Run
    from spawn_lab.runtime.actors import Context

__all__ = ("RemoteHost", "UserFunctionClient")

ACTIONS_PATH: Final = "/api/v1/actors/actions"
_HEADERS: Final = {"Content-Type": "application/octet-stream", "Connection": "keep-alive"}
_RETRIED: Final = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError)


def _snippet(data: bytes, limit: int = 120) -> str:
    return repr(data[:limit]) + ("..." if len(data) > limit else "")


class UserFunctionClient:
    """A keep-alive HTTP client for one user function, living on one event loop.

    Calls made on another loop (the system's driver loop, for timers and queued messages) hop to
    ``loop``, where the connection pool lives.
    """

    def __init__(
        self,
        base_url: str,
        loop: asyncio.AbstractEventLoop,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.05,
        down_for: float = 1.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + ACTIONS_PATH
        self.loop = loop
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.down_for = down_for
        self._down_until = 0.0
        self._down_reason = ""
        self.calls: dict[str, int] = {"ok": 0, "error": 0, "retry": 0}
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def post(self, body: bytes, timeout: float | None = None) -> tuple[int, str, bytes]:
        """POST ``body``: ``(status, content type, body)`` of the answer, or a SpawnLabError."""
        if asyncio.get_running_loop() is self.loop:
            return await self._post(body, timeout)
        closed = f"the client of user function {self.base_url} is closed"
        if self._closed or not self.loop.is_running():
            raise SystemStateError(closed)
        try:
            future = asyncio.run_coroutine_threadsafe(self._post(body, timeout), self.loop)
        except RuntimeError as exc:  # the loop was closed with its server just now
            raise SystemStateError(closed) from exc
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and task is not None and not task.cancelling():
                # The server's loop stopped under the call; the caller was not cancelled and
                # must get an answer, or its actor would stay busy for ever.
                raise SystemStateError(f"{closed} (it stopped during the call)") from None
            raise

    async def _post(self, body: bytes, timeout: float | None) -> tuple[int, str, bytes]:
        if self._closed:
            raise SystemStateError(f"the client of user function {self.base_url} is closed")
        if self._down_until and time.monotonic() < self._down_until:
            # Unreachable a moment ago: fail at once rather than queue every actor's mailbox
            # behind the retries (one probe per ``down_for`` finds it when it comes back).
            self.calls["error"] += 1
            raise RemoteProtocolError(
                f"user function {self.url} is unreachable: {self._down_reason}"
            )
        session = self._session
        if session is None:
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64)
            )
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with session.post(
                    self.url,
                    data=body,
                    headers=_HEADERS,
                    timeout=aiohttp.ClientTimeout(total=remaining),
                ) as response:
                    data = await response.read()
                    self.calls["ok"] += 1
                    self._down_until = 0.0
                    return response.status, response.content_type, data
            except TimeoutError as exc:
                self.calls["error"] += 1
                raise InvocationTimeoutError(
                    f"user function {self.url} did not answer within {limit} s"
                ) from exc
            except _RETRIED as exc:
                if attempt < self.retries and deadline - time.monotonic() > self.backoff:
                    attempt += 1
                    self.calls["retry"] += 1
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                self.calls["error"] += 1
                self._down_until = time.monotonic() + self.down_for
                self._down_reason = f"{exc} (after {attempt + 1} attempts)"
                raise RemoteProtocolError(
                    f"user function {self.url} is unreachable after {attempt + 1} attempts: {exc}"
                ) from exc
            except aiohttp.ClientError as exc:
                self.calls["error"] += 1
                raise RemoteProtocolError(f"user function {self.url} failed: {exc}") from exc

    async def aclose(self) -> None:
        """Close the connection pool; call on ``loop``."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def __repr__(self) -> str:
        return f"<UserFunctionClient {self.url} calls={self.calls}>"


class RemoteHost:
    """Runs the actions of the actors one SDK registered, on its user function."""

    __slots__ = ("client", "profile", "system")

    def __init__(self, client: UserFunctionClient, profile: legacy.SdkProfile, system: Any) -> None:
        self.client = client
        self.profile = profile
        self.system = system

    async def call_async(self, run: Run, ctx: Context) -> Value:
        """The driver's entry point: one ActorInvocation, one Value (or a SpawnLabError)."""
        return await self.invoke(ctx, run.invocation.payload)

    @property
    def handlers(self) -> _BlockingCalls:
        """Blocking handlers by action name, for TASK actors, which the driver runs on its task
        executor (a plain thread): each blocks on the client's loop."""
        return _BlockingCalls(self)

    def handler(self, action: str) -> Callable[[Context, object], Value]:
        return self.handlers[action]

    async def invoke(self, ctx: Context, payload: object) -> Value:
        """Send ``ctx``'s ActorInvocation and apply-ready the answer."""
        json_url = self.profile.json_url
        invocation = protocol_pb2.ActorInvocation(
            actor=codec.actor_id_to_pb(ctx.self), action_name=ctx.action
        )
        context = invocation.current_context
        context.self.CopyFrom(invocation.actor)
        if ctx.caller is not None:
            invocation.caller.CopyFrom(codec.actor_id_to_pb(ctx.caller))
            context.caller.CopyFrom(invocation.caller)
        if ctx.state is not None:
            context.state.CopyFrom(codec.pack_value(ctx.state, json_url))
        context.tags.update(ctx.tags)
        context.metadata.update(ctx.metadata)
        codec.set_payload(invocation, payload, json_url)
        timeout = _request_timeout(ctx.metadata)
        status, content_type, data = await self.client.post(invocation.SerializeToString(), timeout)
        return self._value(ctx, status, content_type, data)

    def _value(self, ctx: Context, status: int, content_type: str, data: bytes) -> Value:
        where = f"user function {self.client.url} ({ctx.self.name}.{ctx.action})"
        if not 200 <= status < 300:
            raise RemoteProtocolError(
                f"{where} answered HTTP {status} {content_type or '(no content type)'}: "
                f"{_snippet(data)}"
            )
        if not data:
            raise RemoteProtocolError(
                f"{where} answered an empty body, not an ActorInvocationResponse"
            )
        try:
            response = protocol_pb2.ActorInvocationResponse.FromString(data)
            value = codec.value_from_response(response, wall_ms=time.time() * 1000)
        except DecodeError as exc:
            raise RemoteProtocolError(
                f"{where} answered bytes that are not an ActorInvocationResponse ({exc}): "
                f"{_snippet(data)}"
            ) from exc
        except (ProtocolError, PayloadError) as exc:
            raise RemoteProtocolError(f"{where} answered an unusable response: {exc}") from exc
        broadcast = value.broadcast
        if self.profile.broadcast_action and broadcast is not None:
            action = legacy.broadcast_action(response.workflow.broadcast)
            if action:  # rule L4: the old SDK's action name goes to every subscriber
                value.broadcast = dataclasses.replace(broadcast, action=action)
        return value

    def __repr__(self) -> str:
        return f"<RemoteHost {self.client.base_url} {self.profile}>"


class _BlockingCalls:
    """``host.handlers[action]``: the same blocking call whatever the action."""

    __slots__ = ("_host",)

    def __init__(self, host: RemoteHost) -> None:
        self._host = host

    def __getitem__(self, action: str) -> Callable[[Context, object], Value]:
        host = self._host

        def run_remote(ctx: Context, payload: object) -> Value:
            future = asyncio.run_coroutine_threadsafe(host.invoke(ctx, payload), host.client.loop)
            return future.result()

        return run_remote


def _request_timeout(metadata: dict[str, str]) -> float | None:
    """Metadata ``request-timeout`` (ms) bounds the user-function call too (§4.8)."""
    raw = metadata.get("request-timeout")
    if raw is None:
        return None
    try:
        return int(raw) / 1000
    except ValueError:
        return None
