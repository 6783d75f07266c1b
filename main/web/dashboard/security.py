"""Who may see the dashboard and who may act on it.

- With JOBQUEUE_DASHBOARD_TOKEN set, every request needs it: `Authorization: Bearer <token>` (scripts), or the
  session cookie a browser gets by entering the token on /login (HttpOnly, SameSite=Strict).
- Without a token the dashboard only binds to a loopback address (`jobqueue dashboard` refuses anything else).
- Every action is a POST that carries the CSRF token (a form field or the X-CSRF-Token header), which only a
  page of the dashboard itself can read; a bearer token stands for it (a browser never sends one on its own).
  A POST whose Origin is another site is refused whatever it carries.
- Read-only (JOBQUEUE_DASHBOARD_READ_ONLY): no actions at all, and no buttons for them.
"""

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

SESSION_COOKIE = "jobqueue_session"


@dataclass(frozen=True)
class Security:
    token: str | None = None
    read_only: bool = False
    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def _sign(self, purpose: str) -> str:
        key = self._secret + (self.token or "").encode()
        return hmac.new(key, purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def csrf_token(self) -> str:
        return self._sign("csrf")

    @property
    def session_value(self) -> str:
        return self._sign("session")

    def token_matches(self, given: str | None) -> bool:
        return self.token is not None and given is not None and hmac.compare_digest(given.encode(),
                                                                                    self.token.encode())

    def bearer(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(value.strip())

    def may_read(self, request: Request) -> bool:
        if self.token is None:
            return True
        cookie = request.cookies.get(SESSION_COOKIE)
        return self.bearer(request) or (cookie is not None and hmac.compare_digest(cookie, self.session_value))

    def action_refusal(self, request: Request, csrf: str | None) -> str | None:
        """Why this POST may not act (None: it may)."""
        if self.read_only:
            return "the dashboard is read-only (JOBQUEUE_DASHBOARD_READ_ONLY)"
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            return f"a request from another site ({origin}) may not act here"
        if self.token is not None and self.bearer(request):
            return None
        given = csrf or request.headers.get("x-csrf-token")
        if given is None or not hmac.compare_digest(given, self.csrf_token):
            return "the CSRF token is missing or wrong: act from the dashboard's own pages (reload the page)"
        return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
