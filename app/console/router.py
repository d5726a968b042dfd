"""`/admin`: the console's HTML shell and its static files. Everything else the console does goes through the
public API with the signed-in user's access token (no route here reads or writes tenant data)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import RedirectResponse, Response

from app.console.assets import FILES, SHELL, File
from app.encoding import VARY
from app.errors import NotFound

router = APIRouter(include_in_schema=False)

IMMUTABLE = "public, max-age=31536000, immutable"
# No 'unsafe-inline' anywhere: scripts are modules from our origin, styles our stylesheet (the pages set
# no style attributes; charts use SVG presentation attributes). Images: ours, data: (the MFA QR code) and
# https: (a broker's logo). Frames: ours only (the widget preview). The console itself is never framed.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
       "connect-src 'self'; frame-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'; manifest-src 'self'")
SHELL_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cache-Control": "no-cache",
}


def _send(f: File, request: Request, cache_control: str, body: bytes | None = None) -> Response:
    headers = {"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff", "Vary": VARY,
               "ETag": f'"{f.digest}"'}
    if body is not None:  # the shell, with its release URLs filled in (small: sent as is)
        return Response(body, media_type=f.media_type, headers={**headers, **SHELL_HEADERS})
    inm = request.headers.get("if-none-match", "")
    if f.digest in inm:
        return Response(status_code=304, headers=headers)
    data, coding = f.body.pick(request.headers.get("accept-encoding"))
    if coding is not None:
        headers["Content-Encoding"] = coding
    return Response(data, media_type=f.media_type, headers=headers)


@router.get("/admin")
async def admin_redirect() -> RedirectResponse:
    return RedirectResponse("/admin/", status_code=308)


@router.get("/admin/")
async def shell(request: Request) -> Response:
    f = FILES.get(SHELL)
    if f is None:
        raise NotFound("The console is not installed (console/index.html).")
    base = f"/admin/static/v/{FILES.release()}"
    return _send(f, request, "no-cache", f.body.body.replace(b"%STATIC%", base.encode()))


@router.get("/admin/static/v/{release}/{name:path}")
async def static(release: Annotated[str, Path(pattern=r"^[0-9a-f]{20}$")],
                 name: Annotated[str, Path(max_length=100)], request: Request) -> Response:
    f = FILES.get(name) if name != SHELL else None
    if f is None:
        raise NotFound(f"No console file {name}.")
    return _send(f, request, IMMUTABLE if release == FILES.release() else "no-cache")
