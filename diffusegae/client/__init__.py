"""A thin client for the diffusegae Triton server: uint8 NHWC numpy or PIL images in, uint8 NHWC out.

    from diffusegae.client import Client
    with Client("127.0.0.1:8001") as client:
        edited = client.edit(source, reference, swap=["background"], steps=20)
        inversion = client.invert(source, steps=20)  # once; then edit it with any number of references
        edited = client.edit_inverted(inversion, reference, swap=["background"])

`AsyncClient` has the same methods as coroutines; `diffusegae.client.batch` edits whole folders
(`diffusegae edit`). Server errors raise ServerError (the server's message
and gRPC status); UNAVAILABLE is retried with exponential backoff. No torch anywhere here.
"""

from diffusegae.client.aio import AsyncClient
from diffusegae.client.calls import Inversion
from diffusegae.client.errors import Retry, ServerError
from diffusegae.client.sync import Client

__all__ = ["AsyncClient", "Client", "Inversion", "Retry", "ServerError"]
