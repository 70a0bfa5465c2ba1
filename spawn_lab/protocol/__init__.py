"""Spawn's wire protocol: generated protobuf code and the codecs that turn it into Python values."""

from spawn_lab.protocol.payloads import JSON_TYPE_URL, decode, encode, pack, type_url_of, unpack

__all__ = ("JSON_TYPE_URL", "decode", "encode", "pack", "type_url_of", "unpack")
