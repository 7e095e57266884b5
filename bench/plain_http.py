"""The baseline HTTP server of ``bench/api.py``: Starlette under uvicorn, configured as
Magpie's API is, whose one route only decodes the JSON body and answers an empty list.

``python bench/plain_http.py PORT`` serves until SIGTERM.
"""

from __future__ import annotations

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def onlinestatus(request: Request) -> JSONResponse:
    """Decode the body, answer ``[]``."""
    json.loads(await request.body())
    return JSONResponse([])


app = Starlette(routes=[Route("/user/onlinestatus", onlinestatus, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
