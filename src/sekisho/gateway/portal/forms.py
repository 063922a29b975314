"""Reading portal form posts safely: a size cap before parsing, Fetch Metadata and Origin checks
(CR-02), and the CSRF token (CR-01)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

from sekisho.errors import BadRequest


class TooLarge(BadRequest):
    status = 413


class CrossSite(BadRequest):
    status = 403


async def read_form(request: Request, *, limit: int) -> dict[str, str]:
    """The urlencoded body as a dict of single values. Refuses bodies over ``limit`` bytes
    before reading them whole, so a 1 MB password never reaches parsing or hashing (ST-05)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge("request body too large")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not ctype and declared in (None, "0"):
        return {}  # an empty post: the CSRF check refuses it, with the right status
    if ctype != "application/x-www-form-urlencoded":
        raise BadRequest("expected a form post")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge("request body too large")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise BadRequest("form is not UTF-8") from None
    return {key: values[-1] for key, values in parsed.items()}


def check_same_origin(request: Request, *, origins: frozenset[str]) -> None:
    """Refuse a state-changing request sent from another site (CR-02)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site not in ("same-origin", "none"):
            raise CrossSite("cross-site request")
        return
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin.lower() not in origins:
        raise CrossSite("cross-origin request")
