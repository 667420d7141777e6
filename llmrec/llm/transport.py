"""JSON over HTTP for ``OpenAICompatibleLM``: one POST with retries, key redaction and answer checks.

Only the standard library is used (urllib).

* The API key is read from an environment variable at each request and never stored, logged or
  put in an error: any server text shown is passed through ``JSONTransport.redact``, which
  replaces the key (as is and URL-encoded) by ``[redacted $VAR]``. A 401/403 without a key names
  the variable that was unset.
* Redirects to another origin (scheme, host or port) are refused with ``RedirectRefusedError``:
  requests carry ``Authorization: Bearer <key>``, which urllib's default handler would send on.
* Connection errors, timeouts, 429 and 5xx are retried with bounded exponential backoff (or the
  server's ``Retry-After``, capped the same way); other 4xx raise ``ServerError`` at once.
* The validators (``usage``, ``text``, ``field``) turn a 200 answer that lacks a field or holds one
  of the wrong type into ``MalformedResponseError`` naming the URL and the field.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from llmrec.llm.base import LLMError

logger = logging.getLogger(__name__)


class ServerError(LLMError):
    """The server answered with an error that retrying will not fix (4xx other than 429).

    ``body`` must already be redacted (``JSONTransport.redact``); ``hint`` follows it."""

    def __init__(self, url: str, status: int, body: str, hint: str = "") -> None:
        self.status = status
        super().__init__(f"{url}: HTTP {status}: {body[:500]}{hint}")


class RedirectRefusedError(LLMError):
    """The server redirected a request to another host; the API key is never sent there."""


class MalformedResponseError(LLMError):
    """A successful answer lacks a field or holds one of the wrong type."""

    def __init__(self, url: str, field: str, expected: str, got: str) -> None:
        self.url = url
        self.field = field
        super().__init__(f"{url}: malformed answer, field {field!r}: expected {expected}, got {got}")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a malformed port: treat as its own origin (so it is refused)
        port = -1
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class _SameHostRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the request's own scheme, host and port."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        if _origin(newurl) != _origin(req.full_url):
            fp.close()
            raise RedirectRefusedError(
                f"{req.full_url}: HTTP {code} redirect to {newurl} refused: it points to another host, and "
                "requests carry the API key (Authorization header), which is never sent to a host other "
                "than base_url; set base_url to the server that should answer"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _retry_after_seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class JSONTransport:
    """POSTs JSON to one server and checks the answers; holds the key's variable name, never the key."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.base_url = base_url
        self.api_key_env = api_key_env  # the variable's NAME; the key itself is never stored
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        # Our own opener, not urlopen's global one: its redirect handler keeps the key on this host.
        self._opener = urllib.request.build_opener(_SameHostRedirectHandler)

    # ------------------------------------------------------------------ the key
    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def redact(self, text: str) -> str:
        """``text`` with the API key (as is and URL-encoded) replaced: servers may echo headers."""
        key = os.environ.get(self.api_key_env)
        if not key:
            return text
        for form in {key, urllib.parse.quote(key, safe=""), urllib.parse.quote_plus(key)}:
            text = text.replace(form, f"[redacted ${self.api_key_env}]")
        return text

    def auth_hint(self, status: int) -> str:
        if status not in (401, 403):
            return ""
        if not os.environ.get(self.api_key_env):
            return f" (no API key was sent: the environment variable {self.api_key_env} is not set)"
        return f" (the server refused the key from the environment variable {self.api_key_env})"

    # ------------------------------------------------------------------ the request
    def post(self, path: str, body: dict[str, Any], *, retry: bool = True, root: str | None = None) -> dict[str, Any]:
        """POST JSON to ``(root or base_url) + path`` and return the decoded answer, retrying transient
        failures with backoff."""
        url = f"{root or self.base_url}{path}"
        data = json.dumps(body).encode("utf-8")
        attempts = self.max_retries + 1 if retry else 1
        last_error = ""
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                request = urllib.request.Request(url, data=data, headers=self.headers(), method="POST")
                with self._opener.open(request, timeout=self.timeout) as response:
                    payload = response.read()
                try:
                    answer = json.loads(payload)
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                    raise self.malformed(url, "(body)", "JSON", payload[:200]) from None
                if not isinstance(answer, dict):
                    raise self.malformed(url, "(body)", "a JSON object", answer)
                return answer
            except RedirectRefusedError as error:  # raised by the handler, which cannot see the key
                raise RedirectRefusedError(self.redact(str(error))) from None
            except urllib.error.HTTPError as error:
                text = self.redact(error.read().decode("utf-8", "replace"))
                if error.code != 429 and error.code < 500:
                    raise ServerError(url, error.code, text, self.auth_hint(error.code)) from None
                last_error = f"HTTP {error.code}: {text[:200]}"
                retry_after = _retry_after_seconds(error.headers.get("Retry-After"))
            except TimeoutError:
                last_error = f"timed out after {self.timeout} s"
            except urllib.error.URLError as error:
                reason = error.reason
                last_error = (
                    f"timed out after {self.timeout} s"
                    if isinstance(reason, (TimeoutError, socket.timeout))
                    else f"connection failed: {reason}"
                )
            except (ConnectionError, http.client.HTTPException) as error:
                last_error = f"connection failed: {type(error).__name__}: {error}"
            if attempt + 1 < attempts:
                delay = min(self.max_backoff, retry_after if retry_after is not None else self.backoff * 2**attempt)
                last_error = self.redact(last_error)
                logger.warning("%s: %s; retry %d/%d in %.1f s", url, last_error, attempt + 1, attempts - 1, delay)
                time.sleep(delay)
        raise LLMError(self.redact(f"{url}: no answer after {attempts} attempt(s); last error: {last_error}"))

    # ------------------------------------------------------------------ the answer's fields
    def malformed(self, url: str, field: str, expected: str, got: Any) -> MalformedResponseError:
        """The error for a field of the wrong shape; ``got`` is shown shortened and redacted."""
        shown = repr(got)
        shown = shown if len(shown) <= 300 else shown[:300] + "..."
        return MalformedResponseError(url, field, expected, self.redact(shown))

    def usage(self, answer: dict[str, Any], url: str) -> tuple[int, int]:
        """(prompt_tokens, completion_tokens) of an answer; absent counts are 0, wrong types an error."""
        usage = answer.get("usage")
        if usage is None:
            return 0, 0
        if not isinstance(usage, dict):
            raise self.malformed(url, "usage", "an object with prompt_tokens and completion_tokens", usage)
        counts = []
        for name in ("prompt_tokens", "completion_tokens"):
            value = usage.get(name)
            if value is None:
                counts.append(0)
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not number or value < 0 or value != int(value):
                raise self.malformed(url, f"usage.{name}", "a non-negative integer", value)
            counts.append(int(value))
        return counts[0], counts[1]

    def text(self, answer: dict[str, Any], path: list[Any], url: str) -> str:
        """The generated text at ``path``: a string, or null (nothing generated)."""
        value = self.field(answer, path, url)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.malformed(url, ".".join(map(str, path)), "a string", value)
        return value

    def field(self, answer: dict[str, Any], path: list[Any], url: str) -> Any:
        """Walk ``answer`` along ``path``; a missing piece is a clear error, not a KeyError."""
        node: Any = answer
        for key in path:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                raise self.malformed(url, ".".join(map(str, path)), "the field to be present", answer) from None
        return node


__all__ = ["JSONTransport", "MalformedResponseError", "RedirectRefusedError", "ServerError"]
