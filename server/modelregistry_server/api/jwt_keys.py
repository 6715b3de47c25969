"""The public keys that verify JWT signatures: a PEM file, a JWKS file or an https JWKS URL.

Each key verifies exactly one algorithm, fixed by the key itself (RSA of at least 2048 bits:
RS256; EC P-256: ES256), never by the token's header, so no token can make a public key serve
as an HMAC secret or one key type stand in for another.

Files are re-read when they change (a rotated key file takes effect without a restart; a file
that no longer parses keeps the keys it had, with a warning). A JWKS URL is fetched at
start-up, again once its keys are :data:`JWKS_MAX_AGE_SECONDS` old, and at once when a token
names a ``kid`` it does not hold; fetches are at least :data:`JWKS_MIN_REFRESH_SECONDS` apart,
so a flood of tokens with made-up ``kid``\\ s costs the key server one request per interval. A
failed fetch keeps the keys from the last good one (an outage of the identity provider does not
lock everybody out).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any, Protocol
from urllib.error import URLError
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWK
from jwt.exceptions import PyJWTError

log = logging.getLogger(__name__)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

JWKS_MAX_AGE_SECONDS = 300.0
JWKS_MIN_REFRESH_SECONDS = 10.0
JWKS_TIMEOUT_SECONDS = 5.0
JWKS_MAX_BYTES = 1024 * 1024
_MIN_RSA_BITS = 2048

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?\r?\n-----END \1-----", re.DOTALL)


@dataclass(frozen=True)
class VerificationKey:
    """One public key, the one algorithm it verifies, and its ``kid`` (None: unnamed)."""

    algorithm: str
    key: PublicKey
    kid: str | None = None


class KeySource(Protocol):
    """Where the verification keys come from."""

    def keys_for(self, kid: str | None) -> Sequence[VerificationKey]:
        """The current keys, refreshed first if ``kid`` names none of them and the source can
        be refreshed."""
        ...


def algorithm_of(key: object) -> str:
    """The one algorithm ``key`` verifies; ValueError for any other kind of key."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"an RSA key of {key.key_size} bits (at least {_MIN_RSA_BITS})")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"an EC key on {key.curve.name} (ES256 needs P-256)")
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("a private key (give the public key)")
    raise ValueError("a key that is neither RSA nor EC P-256")


def parse_pem(text: str, origin: str) -> tuple[VerificationKey, ...]:
    """The keys of PEM ``PUBLIC KEY``, ``RSA PUBLIC KEY`` and ``CERTIFICATE`` blocks."""
    keys = []
    for number, block in enumerate(_PEM_BLOCK.finditer(text), start=1):
        label, data = block.group(1), block.group(0).encode()
        try:
            if "PRIVATE" in label:
                raise ValueError("a private key (give the public key or certificate)")
            if label == "CERTIFICATE":
                key: object = x509.load_pem_x509_certificate(data).public_key()
            elif label in ("PUBLIC KEY", "RSA PUBLIC KEY"):
                key = serialization.load_pem_public_key(data)
            else:
                raise ValueError(f"a {label} block (expected PUBLIC KEY or CERTIFICATE)")
            keys.append(VerificationKey(algorithm_of(key), key))  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"{origin}: PEM block {number} is {_what(exc)}") from None
    if not keys:
        raise ValueError(f"{origin}: no PEM public key or certificate in it")
    return tuple(keys)


def parse_jwks(document: object, origin: str) -> tuple[VerificationKey, ...]:
    """The signing keys of a JWK Set (or of a single JWK). Keys for encryption, of other
    algorithms or malformed are skipped with a warning; none usable is a ValueError."""
    if isinstance(document, dict) and isinstance(document.get("keys"), list):
        entries: list[Any] = document["keys"]
    elif isinstance(document, dict) and "kty" in document:
        entries = [document]
    else:
        raise ValueError(f"{origin}: not a JWK Set (a JSON object with a 'keys' list)")
    keys = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        label = f"key {number}" + (f" (kid {kid!r})" if isinstance(kid, str) else "")
        try:
            if kid is not None and not isinstance(kid, str):
                raise ValueError("a key whose kid is not a string")
            if "d" in entry or entry.get("kty") == "oct":
                raise ValueError("private or symmetric key material")
            key = PyJWK(entry).key
            algorithm = algorithm_of(key)
            if entry.get("alg", algorithm) != algorithm:
                raise ValueError(f"a key for {entry.get('alg')!r} (accepted: RS256, ES256)")
            keys.append(VerificationKey(algorithm, key, kid))
        except (ValueError, PyJWTError) as exc:
            log.warning("%s: %s is not used: %s", origin, label, _what(exc))
    if not keys:
        raise ValueError(f"{origin}: no usable RS256 or ES256 signing key in it")
    return tuple(keys)


def parse_key_file(data: bytes, origin: str) -> tuple[VerificationKey, ...]:
    """The keys of a PEM file or of a JWKS (JSON) file."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{origin}: neither PEM nor JSON (not UTF-8 text)") from None
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{origin}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return parse_jwks(document, origin)
    return parse_pem(text, origin)


class FileKeys:
    """Keys of a PEM or JWKS file, re-read whenever the file changes."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._stamp = self._stat()
        try:
            data = self._path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the JWT key file {self._path}: {exc.strerror}") from None
        self._keys = parse_key_file(data, f"JWT key file {self._path}")

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self._path)
        except OSError:
            return (0, 0, 0)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def keys_for(self, kid: str | None) -> Sequence[VerificationKey]:
        stamp = self._stat()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._stamp = stamp
                    self._reload()
        return self._keys

    def _reload(self) -> None:
        origin = f"JWT key file {self._path}"
        try:
            self._keys = parse_key_file(self._path.read_bytes(), origin)
        except OSError as exc:
            log.warning("%s: cannot be read (%s); keeping the keys read before", origin, exc)
        except ValueError as exc:
            log.warning("%s; keeping the keys read before", exc)
        else:
            log.info("%s changed: %d keys", origin, len(self._keys))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class JwksUrlKeys:
    """Keys of an https JWKS URL, cached and refreshed as the module docstring says."""

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_age: float = JWKS_MAX_AGE_SECONDS,
        min_refresh_interval: float = JWKS_MIN_REFRESH_SECONDS,
        timeout: float = JWKS_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"the JWKS URL must be https://host/... (not {parts.scheme!r}://)")
        self.url = url
        # For logs: no userinfo or query (they could carry a credential).
        self._shown = (
            f"https://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        )
        self._opener = urllib.request.build_opener(
            _NoRedirects(), urllib.request.HTTPSHandler(context=ssl_context or _default_ssl())
        )
        self._max_age = max_age
        self._min_interval = min_refresh_interval
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: tuple[VerificationKey, ...] = ()
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self.fetches = 0  # attempts, for tests and logs
        self._refresh()

    def keys_for(self, kid: str | None) -> Sequence[VerificationKey]:
        keys = self._keys
        if not keys or (kid is not None and all(k.kid != kid for k in keys)):
            with self._lock:  # this call needs the answer: wait for a fetch under way
                self._refresh_if_allowed()
        elif self._clock() - self._fetched_at >= self._max_age and self._lock.acquire(False):
            try:  # stale but usable: one caller refreshes, the others go on with these keys
                self._refresh_if_allowed()
            finally:
                self._lock.release()
        return self._keys

    def _refresh_if_allowed(self) -> None:
        if self._clock() - self._attempted_at >= self._min_interval:
            self._refresh()

    def _refresh(self) -> None:
        """Fetch the set once (the caller holds the lock, or is the constructor)."""
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            with self._opener.open(self.url, timeout=self._timeout) as response:
                body = response.read(JWKS_MAX_BYTES + 1)
            if len(body) > JWKS_MAX_BYTES:
                raise ValueError(f"the document is over {JWKS_MAX_BYTES} bytes")
            try:
                document = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise ValueError("the document is not JSON") from None
            keys = parse_jwks(document, f"JWKS {self._shown}")
        except (OSError, URLError, HTTPException, ValueError) as exc:
            held = (
                f"keeping the {len(self._keys)} keys fetched before"
                if self._keys
                else "no keys yet: JWTs are refused until a fetch succeeds"
            )
            log.warning("cannot fetch the JWKS %s (%s); %s", self._shown, _what(exc), held)
            return
        if {k.kid for k in keys} != {k.kid for k in self._keys}:
            log.info("JWKS %s: %d keys (kids %s)", self._shown, len(keys), [k.kid for k in keys])
        self._keys = keys
        self._fetched_at = self._clock()


def _default_ssl() -> ssl.SSLContext:
    return ssl.create_default_context()


def ssl_context_for(ca_file: str) -> ssl.SSLContext:
    """A TLS client context trusting ``ca_file`` (a PEM bundle), or the system's CAs."""
    if not ca_file:
        return _default_ssl()
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the JWKS CA file {ca_file}: {_what(exc)}") from None


def key_source(spec: str, *, ca_file: str = "") -> KeySource:
    """The key source ``--jwt-public-keys`` names: an https URL, else a PEM or JWKS file."""
    if "://" in spec:
        return JwksUrlKeys(spec, ssl_context=ssl_context_for(ca_file))
    if ca_file:
        raise ValueError("--jwt-jwks-ca-file applies only to an https JWKS URL")
    return FileKeys(spec)


def _what(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
    return str(text) or type(exc).__name__
