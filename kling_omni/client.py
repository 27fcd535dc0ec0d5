"""The CometAPI Kling Omni Video client: one creation call, one status call.

Each method makes exactly one HTTP attempt; retrying is the caller's decision (see
waiting.py), because the two calls differ: a status query is safe to repeat, a creation
request is not, since a lost answer may hide a created, billed task.

The key travels only as the Authorization header of requests to `base_url`, which must be
https (plain http only to this machine): redirects are not followed, it is never in a repr,
a log line or an exception message.

A request the HTTP library refuses to build (RequestNotSent) never left this machine; only
one that may have reached the server can leave a creation uncertain.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import quote, urlsplit

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from . import errors
from .credentials import key_id
from .responses import business_error, error_from_response, load_json, parse_created, parse_task, retry_after_seconds
from .task import QUEUED, TASK_ID_RULE, TaskState, check_task_id, is_task_id

DEFAULT_BASE_URL = "https://api.cometapi.com"
OMNI_PATH = "/kling/v1/videos/omni-video"
DEFAULT_TIMEOUT = (10, 60)  # (connect, read) seconds
# What building a request can raise (a URL or header that cannot be encoded): whatever fails in
# that phase failed before one byte left this machine. Sending is another phase (see _prepare).
_NOT_BUILT = (ValueError, UnicodeError, requests.RequestException)


def base_url_from_env(environ=None) -> str:
    """COMETAPI_BASE_URL, else the public CometAPI host."""
    environ = os.environ if environ is None else environ
    return (environ.get("COMETAPI_BASE_URL") or "").strip().rstrip("/") or DEFAULT_BASE_URL


def checked_base_url(url: str) -> str:
    """`url` if the key may be sent there; else an error naming COMETAPI_BASE_URL and the rule.

    Strict, so a value the HTTP library would choke on fails here, before anything is
    journalled: http(s), a host, a port from 1 to 65535, no user name, query or fragment.
    Plain http only to a loopback host: anywhere else the key would cross the network in clear.
    """
    def refuse(problem: str):
        raise errors.OmniError(f"COMETAPI_BASE_URL {problem}. The default is {DEFAULT_BASE_URL}. Nothing was sent.")

    if "@" in url:  # not echoed: it may hold a password
        refuse("must not contain a user name or password (user@…)")
    shown = repr(url if len(url) <= 80 else url[:79] + "…")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address
        refuse(f"is not a valid URL ({exc}; got {shown})")
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in ("http", "https"):
        refuse(f"must start with https:// (got {shown})")
    if not host or not _valid_host(host):
        refuse(f"has no valid host name (got {shown})")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        refuse(f"has an invalid port (got {shown}): a port is a number from 1 to 65535")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        refuse(f"must not have a query (?…) or fragment (#…) (got {shown})")
    if scheme == "http" and not _is_loopback(host):
        refuse(f"starts with http://, which would send your key unencrypted to {host}: use https:// "
               f"(plain http is accepted only for this machine: localhost, 127.0.0.1, ::1)")
    return url


def _valid_host(host: str) -> bool:
    if ":" in host:  # an IPv6 literal (urlsplit has removed the brackets)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    return all(ch.isalnum() or ch in ".-_" for ch in host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _BearerAuth(requests.auth.AuthBase):
    """Sets the header at send time. Passing an auth object also stops requests from
    replacing it with ~/.netrc credentials."""

    def __init__(self, key: str):
        self._key = key

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self._key}"
        return request

    def __repr__(self) -> str:
        return "<BearerAuth [redacted]>"


class OmniClient:
    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, *, timeout=DEFAULT_TIMEOUT):
        if not api_key or not api_key.strip():
            raise errors.KeyMissing()
        self.base_url = checked_base_url((base_url or DEFAULT_BASE_URL).strip().rstrip("/"))
        self.timeout = timeout
        self._auth = _BearerAuth(api_key.strip())
        self.key_id = key_id(api_key.strip())
        self._session = requests.Session()  # trust_env: honours HTTP(S)_PROXY / NO_PROXY

    def __repr__(self) -> str:
        return f"OmniClient(base_url={self.base_url!r}, key=[redacted])"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "OmniClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the two calls ----------------------------------------------------------------------

    def create_task(self, payload: dict) -> TaskState:
        """POST the request once. Never retried: see CreationUncertain."""
        external = str(payload.get("external_task_id") or "")
        url = self.base_url + OMNI_PATH
        try:
            prepared = self._prepare("POST", url, json=payload)
        except _NOT_BUILT as exc:
            raise self._not_sent(exc) from None
        try:
            response = self._send(prepared)
        except requests.ConnectTimeout as exc:
            raise errors.NetworkError(self._no_connection(url, exc)) from None
        except requests.ReadTimeout:
            raise self._uncertain("no answer came within the time limit", external) from None
        except (requests.exceptions.SSLError, requests.exceptions.ProxyError) as exc:
            raise errors.NetworkError(self._no_connection(url, exc)) from None
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise errors.NetworkError(self._no_connection(url, exc)) from None
            raise self._uncertain("the connection broke before the answer arrived", external) from None
        except Exception:  # anything else once sending began (e.g. a garbled answer): it may have arrived
            raise self._uncertain("the request failed while in flight", external) from None

        status = response.status_code
        if status >= 500:
            error = self._error(response)
            if isinstance(error, errors.BadRequest):  # 500 + invalid_request: rejected, nothing made
                raise error
            raise self._uncertain(f"CometAPI answered HTTP {status} ({error.detail})", external, status)
        if not 200 <= status < 300:  # any 2xx is success: 201 Created and 202 Accepted too
            raise self._error(response)
        body = load_json(response.text)
        if not isinstance(body, dict):
            if not response.text.strip():
                raise self._uncertain(f"its HTTP {status} answer was empty", external, status)
            raise self._error(response)  # HTML or garbage: not the API, so no task was made
        failure = business_error(body, status, secrets=self._secrets)
        if failure is not None:
            # e.g. HTTP 200 with Kling code 5000: the task may exist. 1302/1303 (RateLimited)
            # are refusals: nothing was made.
            if failure.retryable and not isinstance(failure, errors.RateLimited):
                raise self._uncertain(f"CometAPI answered with an error ({failure.detail})", external, status)
            raise failure
        task_id = parse_created(body)
        if not task_id:
            raise self._uncertain("the answer carried no task id", external, status)
        if not is_task_id(task_id):  # a task was probably made, but its id cannot be used safely
            raise self._uncertain(f"the answer's task id {errors._short(task_id)} is unusable ({TASK_ID_RULE})",
                                  external, status)
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        info = data.get("task_info") if isinstance(data.get("task_info"), dict) else {}
        created = data.get("created_at")
        # The external id as the server echoes it (not as we sent it): proof that it reached Kling.
        echoed = info.get("external_task_id")
        return TaskState(task_id=task_id, status=QUEUED, raw_status=str(data.get("task_status") or ""),
                         external_task_id=str(echoed) if echoed not in (None, "") else "",
                         created_at=created / 1000.0 if isinstance(created, int) and created > 1e11 else None)

    def get_task(self, task_id: str) -> TaskState:
        """GET the task's state once. Raises RateLimited/ServerError/NetworkError (retryable) or another ApiError."""
        task_id = check_task_id(str(task_id or "").strip(), "CometAPI status query", "task_id")
        url = f"{self.base_url}{OMNI_PATH}/{quote(task_id, safe='')}"
        try:
            prepared = self._prepare("GET", url)
        except _NOT_BUILT as exc:
            raise self._not_sent(exc) from None
        try:
            response = self._send(prepared)
        except requests.Timeout as exc:
            raise errors.NetworkError(f"CometAPI did not answer the status query of task {task_id} in time "
                                      f"({type(exc).__name__}).") from None
        except requests.RequestException as exc:
            raise errors.NetworkError(self._no_connection(url, exc)) from None
        if response.status_code != 200:
            raise self._error(response)
        body = load_json(response.text)
        if not isinstance(body, dict):
            raise self._error(response)
        failure = business_error(body, 200, secrets=self._secrets)
        if failure is not None:
            raise failure
        state = parse_task(body, task_id=task_id)
        if not is_task_id(state.task_id):
            raise errors.UnexpectedResponse(f"CometAPI's status answer for task {task_id} names the task "
                                            f"{errors._short(state.task_id)}, which is unusable ({TASK_ID_RULE}).")
        return state

    # --- plumbing ---------------------------------------------------------------------------

    @property
    def _secrets(self) -> tuple:
        return (self._auth._key,)

    def _prepare(self, method: str, url: str, **kwargs) -> requests.PreparedRequest:
        """Build the request, every header encoded as it will be sent: what fails here never left
        this machine. (Errors raised while sending, even ValueErrors such as a response header
        requests cannot parse, come after the request may have arrived.)"""
        prepared = self._session.prepare_request(requests.Request(
            method, url, auth=self._auth, headers={"Accept": "application/json"}, **kwargs))
        for header in prepared.headers.items():  # the auth header too, which requests does not check
            requests.utils.check_header_validity(header)  # no line breaks or leading white space
            if isinstance(header[1], str):
                header[1].encode("latin-1")  # http.client's encoding for header values
        return prepared

    def _send(self, prepared: requests.PreparedRequest) -> requests.Response:
        # As Session.request does: proxies and certificates from the environment (HTTPS_PROXY…).
        settings = self._session.merge_environment_settings(prepared.url, {}, None, None, None)
        return self._session.send(prepared, timeout=self.timeout,
                                  allow_redirects=False,  # a redirect would carry the key elsewhere
                                  **settings)

    def _error(self, response: requests.Response) -> errors.ApiError:
        error = error_from_response(response.status_code, response.text,
                                    content_type=response.headers.get("Content-Type", ""),
                                    location=response.headers.get("Location", ""),
                                    secrets=self._secrets, base_url=self.base_url)
        error.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return error

    def _not_sent(self, exc: Exception) -> errors.RequestNotSent:
        reason = " ".join(errors.redact(str(exc), *self._secrets).split())[:200]
        return errors.RequestNotSent(
            f"The HTTP library could not build the request to CometAPI ({type(exc).__name__}: {reason}), so "
            f"nothing was sent and nothing was created. Check COMETAPI_BASE_URL and the key (COMETAPI_KEY or "
            f"Settings › CometAPI): a key is printable ASCII without spaces or line breaks.")

    def _no_connection(self, url: str, exc: Exception) -> str:
        return errors.redact(f"Could not reach CometAPI at {self.base_url} ({_reason(exc)}). Check the network, "
                             f"any proxy (HTTPS_PROXY) and COMETAPI_BASE_URL. Nothing was created.",
                             *self._secrets)

    def _uncertain(self, what: str, external: str, status=None) -> errors.CreationUncertain:
        found = (f" It carries external_task_id {external!r}, which identifies it." if external else "")
        message = (f"The creation request reached CometAPI but {what}, so it is unknown whether a task "
                   f"was created. A task may exist and be billed; it was NOT resubmitted.{found} "
                   f"Look in your CometAPI task log before running again; if a task is there, collect it "
                   f"by its task id instead of submitting a new one.")
        return errors.CreationUncertain(errors.redact(message, *self._secrets),
                                        external_task_id=external, status=status,
                                        reason=errors.redact(what, *self._secrets))


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the request never left this machine (refused, DNS): no task can exist."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)  # includes NameResolutionError


def _reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    if isinstance(reason, MaxRetryError) and reason.reason is not None:
        reason = reason.reason
    text = str(reason)
    # urllib3 puts the connection object's repr first; the useful part is after the colon
    return text.split(": ", 1)[-1] if text.startswith("<") else text
