"""The baseline HTTP server of ``bench/api.py``: Starlette under uvicorn, configured as
Magpie's API is (uvloop, httptools), whose routes do no work beyond HTTP itself.

``POST /noop`` reads the body and answers a constant JSON object (the baseline of whole
requests); ``POST /user/onlinestatus`` decodes the JSON body and answers an empty list.
``python bench/plain_http.py PORT`` serves until SIGTERM.
"""

from __future__ import annotations

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_OK = b'{"status":200}'


async def noop(request: Request) -> Response:
    """Read the body, answer a constant."""
    await request.body()
    return Response(_OK, media_type="application/json")


async def onlinestatus(request: Request) -> JSONResponse:
    """Decode the body, answer ``[]``."""
    json.loads(await request.body())
    return JSONResponse([])


app = Starlette(
    routes=[
        Route("/noop", noop, methods=["POST"]),
        Route("/user/onlinestatus", onlinestatus, methods=["POST"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
