"""A software WebAuthn authenticator for server-side tests: real keys, real CBOR, real signatures.

It plays the browser *and* the authenticator: it reads the options JSON the gateway sends
(``webauthn.options_to_json`` output, as the portal JS gets it) and returns the
``PublicKeyCredential`` JSON the browser would post back (``RegistrationResponseJSON`` /
``AuthenticationResponseJSON``, base64url fields). Verification on the other side is the real
py_webauthn; nothing is mocked.

API::

    auth = SoftAuthenticator(origin="https://gw.example.test")   # rp_id: from the options
    reg = auth.register(options_json)                  # -> dict; json.dumps(reg) to post it
    got = auth.assertion(options_json)                 # -> dict for navigator.credentials.get

    # Knobs (keyword-only), to build tampered or unusual responses:
    SoftAuthenticator(origin=..., algorithm="ES256"|"EdDSA"|"RS256"|"ES384",
                      backup_eligible=False, backed_up=False, user_verification=True,
                      counter=True,            # False: always-zero counter (synced passkeys)
                      aaguid=bytes(16), transports=("internal",))
    auth.register(options, origin="https://evil.example", rp_id="evil.example",
                  user_verified=False, credential_id=b"...", challenge=b"...")
    auth.assertion(options, origin=..., rp_id=..., user_verified=False, sign_count=5,
                   credential_id=..., user_handle=b"..." | None | KEEP, challenge=...,
                   backup_eligible=..., backed_up=..., corrupt_signature=True)
    auth.credentials                           # {credential_id: SoftCredential}
    auth.credentials[cid].sign_count           # the counter it will increase next time

``register`` refuses (``ExcludedCredential``) when ``excludeCredentials`` names one of its
credentials, like a real authenticator. ``assertion`` uses the first of its credentials in
``allowCredentials``, or with an empty list any discoverable credential for the RP ID (the
newest), and returns ``userHandle`` unless told otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

__all__ = ["KEEP", "ExcludedCredential", "SoftAuthenticator", "SoftCredential", "b64url"]

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
KEEP: Any = object()  # "the authenticator's own value" for user_handle


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ExcludedCredential(Exception):
    """The authenticator holds a credential listed in excludeCredentials (InvalidStateError)."""


@dataclass
class SoftCredential:
    credential_id: bytes
    rp_id: str
    user_handle: bytes
    algorithm: str
    private_key: Any = field(repr=False)
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        public = self.private_key.public_key()
        if self.algorithm in ("ES256", "ES384"):
            numbers = public.public_numbers()
            size, alg, crv = (32, -7, 1) if self.algorithm == "ES256" else (48, -35, 2)
            return cbor2.dumps({1: 2, 3: alg, -1: crv, -2: numbers.x.to_bytes(size, "big"),
                                -3: numbers.y.to_bytes(size, "big")})
        if self.algorithm == "EdDSA":
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

            raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
            return cbor2.dumps({1: 1, 3: -8, -1: 6, -2: raw})
        numbers = public.public_numbers()
        return cbor2.dumps({1: 3, 3: -257, -1: numbers.n.to_bytes(256, "big"),
                            -2: numbers.e.to_bytes(3, "big")})

    def sign(self, data: bytes) -> bytes:
        key = self.private_key
        if self.algorithm == "ES256":
            return bytes(key.sign(data, ec.ECDSA(hashes.SHA256())))
        if self.algorithm == "ES384":
            return bytes(key.sign(data, ec.ECDSA(hashes.SHA384())))
        if self.algorithm == "EdDSA":
            return bytes(key.sign(data))
        return bytes(key.sign(data, padding.PKCS1v15(), hashes.SHA256()))


def _new_key(algorithm: str) -> Any:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown algorithm {algorithm}")


def _options(options: str | dict[str, Any]) -> dict[str, Any]:
    return json.loads(options) if isinstance(options, str) else options


class SoftAuthenticator:
    def __init__(
        self, *, origin: str, algorithm: str = "ES256", backup_eligible: bool = False,
        backed_up: bool = False, user_verification: bool = True, counter: bool = True,
        aaguid: bytes = bytes(16), transports: tuple[str, ...] = ("internal",),
    ) -> None:
        self.origin = origin
        self.algorithm = algorithm
        self.backup_eligible = backup_eligible
        self.backed_up = backed_up
        self.user_verification = user_verification
        self.counter = counter
        self.aaguid = aaguid
        self.transports = transports
        self.credentials: dict[bytes, SoftCredential] = {}

    def _flags(self, *, uv: bool, be: bool, bs: bool, extra: int = 0) -> int:
        return UP | (UV if uv else 0) | (BE if be else 0) | (BS if bs else 0) | extra

    def _client_data(self, kind: str, challenge: bytes, origin: str | None) -> bytes:
        return json.dumps({
            "type": kind, "challenge": b64url(challenge), "origin": origin or self.origin,
            "crossOrigin": False,
        }, separators=(",", ":")).encode()

    def register(
        self, options: str | dict[str, Any], *, origin: str | None = None,
        rp_id: str | None = None, user_verified: bool | None = None,
        credential_id: bytes | None = None, challenge: bytes | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.create(): a new resident credential, attestation "none"."""
        opts = _options(options)
        for excluded in opts.get("excludeCredentials") or []:
            if unb64url(excluded["id"]) in self.credentials:
                raise ExcludedCredential("a credential in excludeCredentials is on this device")
        rp = rp_id or opts["rp"]["id"]
        cred = SoftCredential(
            credential_id=credential_id or os.urandom(32), rp_id=opts["rp"]["id"],
            user_handle=unb64url(opts["user"]["id"]), algorithm=self.algorithm,
            private_key=_new_key(self.algorithm))
        uv = self.user_verification if user_verified is None else user_verified
        attested = (self.aaguid + struct.pack(">H", len(cred.credential_id))
                    + cred.credential_id + cred.cose_public_key())
        auth_data = (hashlib.sha256(rp.encode()).digest()
                     + bytes([self._flags(uv=uv, be=self.backup_eligible, bs=self.backed_up,
                                          extra=AT)])
                     + struct.pack(">I", cred.sign_count) + attested)
        client_data = self._client_data(
            "webauthn.create", challenge or unb64url(opts["challenge"]), origin)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.credentials[cred.credential_id] = cred
        return {
            "id": b64url(cred.credential_id), "rawId": b64url(cred.credential_id),
            "type": "public-key", "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data),
                         "attestationObject": b64url(attestation),
                         "transports": list(self.transports)},
        }

    def _pick(self, opts: dict[str, Any], credential_id: bytes | None) -> SoftCredential:
        if credential_id is not None:
            return self.credentials[credential_id]
        allowed = [unb64url(c["id"]) for c in opts.get("allowCredentials") or []]
        for cid in allowed:
            if cid in self.credentials:
                return self.credentials[cid]
        if allowed:
            raise LookupError("no allowed credential on this authenticator")
        mine = [c for c in self.credentials.values() if c.rp_id == opts["rpId"]]
        if not mine:
            raise LookupError("no discoverable credential for this RP ID")
        return mine[-1]

    def assertion(
        self, options: str | dict[str, Any], *, origin: str | None = None,
        rp_id: str | None = None, user_verified: bool | None = None,
        sign_count: int | None = None, credential_id: bytes | None = None,
        user_handle: Any = KEEP, challenge: bytes | None = None,
        backup_eligible: bool | None = None, backed_up: bool | None = None,
        corrupt_signature: bool = False,
    ) -> dict[str, Any]:
        """navigator.credentials.get(): a signed assertion."""
        opts = _options(options)
        cred = self._pick(opts, credential_id)
        if sign_count is None:
            if self.counter:
                cred.sign_count += 1
            sign_count = cred.sign_count
        uv = self.user_verification if user_verified is None else user_verified
        be = self.backup_eligible if backup_eligible is None else backup_eligible
        bs = self.backed_up if backed_up is None else backed_up
        auth_data = (hashlib.sha256((rp_id or cred.rp_id).encode()).digest()
                     + bytes([self._flags(uv=uv, be=be, bs=bs)])
                     + struct.pack(">I", sign_count))
        client_data = self._client_data(
            "webauthn.get", challenge or unb64url(opts["challenge"]), origin)
        signature = cred.sign(auth_data + hashlib.sha256(client_data).digest())
        if corrupt_signature:
            signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
        handle = cred.user_handle if user_handle is KEEP else user_handle
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if handle is not None:
            response["userHandle"] = b64url(handle)
        return {
            "id": b64url(cred.credential_id), "rawId": b64url(cred.credential_id),
            "type": "public-key", "authenticatorAttachment": "platform",
            "clientExtensionResults": {}, "response": response,
        }
