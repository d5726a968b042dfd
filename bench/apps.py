"""The benchmark server: the real API plus two baseline routes in the same app object.

`uvicorn bench.apps:app` serves `create_app()` unchanged, with two extra POST routes added so that every
target runs in the same process, under the same middleware (RequestContextMiddleware wraps the whole app,
so the baselines pay for it too), on the same server and in the same run as the endpoint under test:

* `/bench/starlette-bare`: a plain Starlette route. It reads the body, parses it with `orjson.loads`,
  and answers fixed bytes. This is roughly the floor for "an HTTP endpoint that looks at a JSON body"
  on this stack: no validation, no calculation, no serialisation.
* `/bench/fastapi-minimal`: the idiomatic minimal FastAPI endpoint: an `async def` taking a small
  Pydantic model with the same 7 fields as the position-size example body, returning a small dict.
  FastAPI does its usual work (json parse, model validation, response encoding). This is the baseline
  for the ">= 0.8x of a minimal FastAPI endpoint that parses the same body" target.

* `/bench/calc-bare`: the *bare calculation endpoint* of issue 5: a FastAPI app of its own with one
  `async def` route that does exactly what position-size does to a body (`validate_json`, calculate,
  `orjson.dumps`) and nothing else: no authentication, no rate limit, no metrics, no request id, no
  storage, no middleware at all. A path dispatcher in front of the real app sends it there, so it runs
  in the same process and run. position-size / calc-bare is the cost of the whole platform layer.

None of the baselines is part of the product; they exist only in this module.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.calculations import service
from app.calculations.schemas import PositionSizeRequest
from app.main import create_app

api = create_app()
bare = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
_position = TypeAdapter(PositionSizeRequest)


@bare.post("/bench/calc-bare")
async def calc_bare(request: Request) -> Response:
    req = _position.validate_json(await request.body())
    return Response(orjson.dumps(service.position_size(req, False)), media_type="application/json")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http" and scope["path"] == "/bench/calc-bare":
        await bare(scope, receive, send)
    else:
        await api(scope, receive, send)  # lifespan and everything else: the real app

_BARE_RESPONSE = b'{"ok":true,"lots":0.66}'


async def starlette_bare(request: Request) -> Response:
    orjson.loads(await request.body())  # parse, so the baseline does the same JSON work as the others
    return Response(_BARE_RESPONSE, media_type="application/json")


class MinimalBody(BaseModel):
    accountBalance: float
    accountCurrency: str
    currencyPair: str
    entryPrice: float
    stopLoss: float
    riskPercentage: float
    leverage: float


async def fastapi_minimal(body: MinimalBody) -> dict[str, Any]:
    return {"ok": True, "lots": 0.66}


api.router.add_route("/bench/starlette-bare", starlette_bare, methods=["POST"], include_in_schema=False)
api.add_api_route("/bench/fastapi-minimal", fastapi_minimal, methods=["POST"], include_in_schema=False)
