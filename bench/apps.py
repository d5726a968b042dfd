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

Neither baseline is part of the product; they exist only in this module.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from app.main import create_app

app = create_app()

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


app.router.add_route("/bench/starlette-bare", starlette_bare, methods=["POST"], include_in_schema=False)
app.add_api_route("/bench/fastapi-minimal", fastapi_minimal, methods=["POST"], include_in_schema=False)
