"""Every exception aiohttp can raise becomes a `bulk.errors` error, in one place.

After httpx's `test_httpcore_all_exceptions_mapped`: the walk over aiohttp's classes fails on any
that `bulk.api.client.TRANSLATIONS` does not place, so a newer aiohttp cannot slip a raw exception
(or a vague "ClassName." message) past the client. Instances are built here and handed to the
translation function: that is not HTTP behaviour, which tests/test_client.py checks on loopback.
"""

from __future__ import annotations

import inspect
import ssl
from types import SimpleNamespace

import aiohttp
import pytest

from bulk.api.client import TRANSLATIONS, PivotalClient, translate_exception
from bulk.errors import (
    ApiStatusError,
    AuthenticationError,
    BulkError,
    NoResponseError,
    RateLimitedError,
    ServerError,
    UsageError,
)

URL = "https://api.example/api/v1/customers"
WHERE = f"POST {URL}"
CONNECT = f"{WHERE}: could not connect to api.example:443."
DROPPED = f"{WHERE}: the connection dropped before the answer was complete."
TIMED_OUT = f"{WHERE}: no answer within 2.5 s."
INVALID_URL = f"The API URL is not valid: {URL}. Check --base-url."
REDIRECTED = f"{WHERE} was redirected; the API does not redirect. Check --base-url."
PROXY_407 = "407 http_407: Proxy Authentication Required"

EXPECTED: dict[str, tuple[type[BulkError], str]] = {
    "ClientConnectionError": (NoResponseError, f"{WHERE}: the connection failed (…)."),
    "ClientConnectionResetError": (NoResponseError, DROPPED),
    "ClientConnectorCertificateError": (NoResponseError, CONNECT),
    "ClientConnectorDNSError": (NoResponseError, CONNECT),
    "ClientConnectorError": (NoResponseError, CONNECT),
    "ClientConnectorSSLError": (NoResponseError, CONNECT),
    "ClientHttpProxyError": (ApiStatusError, PROXY_407),
    "ClientOSError": (NoResponseError, DROPPED),
    "ClientPayloadError": (NoResponseError, DROPPED),
    "ClientProxyConnectionError": (NoResponseError, CONNECT),
    "ClientResponseError": (ApiStatusError, PROXY_407),
    "ClientSSLError": (NoResponseError, CONNECT),
    "ConnectionTimeoutError": (NoResponseError, TIMED_OUT),
    "ContentTypeError": (ApiStatusError, PROXY_407),
    "InvalidURL": (UsageError, INVALID_URL),
    "InvalidUrlClientError": (UsageError, INVALID_URL),
    "InvalidUrlRedirectClientError": (UsageError, REDIRECTED),
    "NonHttpUrlClientError": (UsageError, INVALID_URL),
    "NonHttpUrlRedirectClientError": (UsageError, REDIRECTED),
    "RedirectClientError": (UsageError, REDIRECTED),
    "ServerConnectionError": (NoResponseError, f"{WHERE}: the connection failed (…)."),
    "ServerDisconnectedError": (NoResponseError, DROPPED),
    "ServerFingerprintMismatch": (NoResponseError, f"{WHERE}: the connection failed (…)."),
    "ServerTimeoutError": (NoResponseError, TIMED_OUT),
    "SocketTimeoutError": (NoResponseError, TIMED_OUT),
    "TimeoutError": (NoResponseError, TIMED_OUT),
    "TooManyRedirects": (ApiStatusError, PROXY_407),
    "UploadAbortedError": (NoResponseError, DROPPED),
    "WSServerHandshakeError": (ApiStatusError, PROXY_407),
}
"""What each class becomes; `…` stands for the class's own name."""


def aiohttp_exceptions() -> list[type[BaseException]]:
    """Every `aiohttp.ClientError` subclass aiohttp exports (not the root), and TimeoutError."""
    found = {
        value
        for value in vars(aiohttp).values()
        if inspect.isclass(value)
        and issubclass(value, aiohttp.ClientError)
        and value is not aiohttp.ClientError
    }
    return [*sorted(found, key=lambda cls: cls.__name__), TimeoutError]


def instance(cls: type[BaseException], status: int = 407) -> BaseException:
    """An instance as aiohttp would raise it, with the arguments its constructor wants."""
    connection_key = SimpleNamespace(host="api.example", port=443, ssl=True)
    if issubclass(cls, aiohttp.ClientConnectorCertificateError):
        return cls(connection_key, ssl.SSLCertVerificationError("certificate verify failed"))
    if issubclass(cls, aiohttp.ClientConnectorError):
        return cls(connection_key, OSError(111, "Connection refused"))
    if issubclass(cls, aiohttp.ClientResponseError):
        message = "Proxy Authentication Required" if status == 407 else ""
        return cls(None, (), status=status, message=message)
    if issubclass(cls, aiohttp.InvalidURL):
        return cls(URL)
    if issubclass(cls, aiohttp.ServerFingerprintMismatch):
        return cls(b"expected", b"got", "api.example", 443)
    return cls()


def test_every_aiohttp_exception_is_translated() -> None:
    translated = tuple(cls for classes, _ in TRANSLATIONS for cls in classes)
    unmapped = [cls.__name__ for cls in aiohttp_exceptions() if not issubclass(cls, translated)]
    undecided = [cls.__name__ for cls in aiohttp_exceptions() if cls.__name__ not in EXPECTED]
    if unmapped or undecided:
        pytest.fail(f"Not in TRANSLATIONS: {unmapped}; not in EXPECTED here: {undecided}")


@pytest.mark.parametrize("cls", aiohttp_exceptions(), ids=lambda cls: cls.__name__)
def test_each_exception_becomes_its_kind_with_its_message(cls: type[BaseException]) -> None:
    kind, message = EXPECTED[cls.__name__]

    error = translate_exception(instance(cls), "POST", URL, 2.5)

    assert type(error) is kind
    assert str(error) == message.replace("…", cls.__name__)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (302, ApiStatusError),
        (401, AuthenticationError),
        (429, RateLimitedError),
        (502, ServerError),
    ],
)
def test_a_refused_answer_is_classified_by_its_status(status: int, kind: type[BulkError]) -> None:
    error = translate_exception(instance(aiohttp.ClientHttpProxyError, status), "GET", URL, 1)

    assert type(error) is kind
    assert isinstance(error, ApiStatusError)
    assert (error.status, error.type, error.code) == (status, "unknown", f"http_{status}")
    assert str(error) == f"{status} http_{status}: HTTP {status}"


def test_an_answer_without_an_error_status_is_no_response() -> None:
    error = translate_exception(instance(aiohttp.ContentTypeError, 200), "GET", URL, 1)

    assert type(error) is NoResponseError
    assert str(error) == f"GET {URL}: an answer that could not be used."


def test_the_root_class_and_the_unknown_still_become_no_response() -> None:
    error = translate_exception(aiohttp.ClientError(), "GET", URL, 1)

    assert type(error) is NoResponseError
    assert str(error) == f"GET {URL}: ClientError."


@pytest.mark.parametrize(
    "base_url", ["ftp://api.example/api/v1", "http://[not-a-host/api/v1", "api/v1"]
)
async def test_an_unusable_base_url_is_a_usage_error_sent_once(base_url: str) -> None:
    async with PivotalClient(base_url, "pivotal_acme") as client:
        with pytest.raises(UsageError) as raised:
            await client.me()

    assert str(raised.value) == f"The API URL is not valid: {base_url}/me. Check --base-url."
    assert client.stats.retries == 0
