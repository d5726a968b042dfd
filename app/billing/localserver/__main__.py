"""`python -m app.billing.localserver --port P --upstream URL`: the double (double.py) on 127.0.0.1:P."""

from __future__ import annotations

import argparse

import uvicorn

from app.billing.localserver.double import Double, build_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="localstripe's URL")
    args = parser.parse_args()
    public = f"http://127.0.0.1:{args.port}"
    uvicorn.run(build_app(Double(args.upstream, public)), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
