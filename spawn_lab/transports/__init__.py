"""Adapters that let Spawn software talk to a spawn_lab system: the proxy API and user functions.

Nothing here is imported by ``import spawn_lab``; the HTTP parts need the ``http`` extra
(aiohttp) and load only when used.
"""
