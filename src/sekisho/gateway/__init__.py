"""The HTTP side of Sekisho: the front-door guard, routing, the reverse proxy (streaming HTTP
and WebSocket over aiohttp), client-IP resolution, the portal and admin endpoints.

This is the only subpackage that imports Starlette, and the proxied hot path uses none of
its request/response objects: it is pure ASGI.
"""
