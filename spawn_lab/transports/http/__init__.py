"""Spawn over HTTP: the proxy API for SDKs (``serve_http``) and the user-function side.

Importing this package imports aiohttp (the ``http`` extra); ``import spawn_lab`` does not.
"""

from spawn_lab.transports.http.client import RemoteHost, UserFunctionClient
from spawn_lab.transports.http.proxy import (
    DEFAULT_MAX_BODY,
    Proxy,
    serve_http,
    user_function_address,
)
from spawn_lab.transports.http.runner import HttpServer
from spawn_lab.transports.http.userfn import register_with_proxy, serve_user_function

__all__ = (
    "DEFAULT_MAX_BODY",
    "HttpServer",
    "Proxy",
    "RemoteHost",
    "UserFunctionClient",
    "register_with_proxy",
    "serve_http",
    "serve_user_function",
    "user_function_address",
)
