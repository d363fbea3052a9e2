"""Audit trail signatures with the writer's FLARE kit key. No nvflare import.

A provisioned kit (``<workspace>/startup/rootCA.pem`` present) holds the participant's private key
and the certificate the project's root CA issued for it: ``client.key``/``client.crt`` at a site,
``server.key``/``server.crt`` at the server (nvflare 2.9 provisions 2048-bit RSA). Each trail line
is signed over its canonical body (:func:`consortium.audit.chain.signed_body`):

* RSA: RSA-PSS, MGF1 with SHA-256, SHA-256, the salt as long as the key allows (FLARE's own
  ``nvflare.lighter.utils.sign_content`` scheme); verified with any salt length;
* EC: ECDSA with SHA-256; Ed25519 / Ed448: the pure scheme.

The signature is stored base64 in the line's ``sig`` field. A verifier checks it against the kit's
certificate, after checking that the certificate was issued by the kit's (or a given) root CA.

Where there is no kit (FLARE's simulator has no ``startup/rootCA.pem``) nothing is signed, and the
verifier says so. Where there is a kit but its key or certificate cannot be read, :func:`kit_signer`
raises :class:`KitKeyError`: a provisioned participant never writes unsigned lines (fail closed).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

ROOT_CA = "rootCA.pem"
KIT_FILES = (("fed_server.json", "server.key", "server.crt"), ("fed_client.json", "client.key", "client.crt"))


class KitKeyError(RuntimeError):
    """A provisioned kit whose key or certificate cannot be used to sign or check the trail."""


def _pss(salt_length) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt_length)


@dataclass(frozen=True)
class LineSigner:
    """The writer's private key and the name its certificate carries (common name)."""

    key: object
    name: str

    def sign(self, body: bytes) -> str:
        if isinstance(self.key, rsa.RSAPrivateKey):
            raw = self.key.sign(body, _pss(padding.PSS.MAX_LENGTH), hashes.SHA256())
        elif isinstance(self.key, ec.EllipticCurvePrivateKey):
            raw = self.key.sign(body, ec.ECDSA(hashes.SHA256()))
        elif isinstance(self.key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
            raw = self.key.sign(body)
        else:
            raise KitKeyError(f"cannot sign with a {type(self.key).__name__}")
        return base64.b64encode(raw).decode("ascii")


def signature_valid(public_key, body: bytes, sig: str) -> bool:
    """Whether ``sig`` (base64) is the signature of ``body`` under ``public_key``."""
    try:
        raw = base64.b64decode(sig.encode("ascii"), validate=True)
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(raw, body, _pss(padding.PSS.AUTO), hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(raw, body, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            public_key.verify(raw, body)
        else:
            return False
    except (InvalidSignature, ValueError, binascii.Error, UnicodeEncodeError, AttributeError):
        return False
    return True


def is_provisioned(workspace: Path) -> bool:
    """Whether ``workspace`` is a provisioned kit (its ``startup/`` holds the root CA)."""
    return (Path(workspace) / "startup" / ROOT_CA).is_file()


def _kit_paths(workspace: Path) -> tuple[Path, Path]:
    startup = Path(workspace) / "startup"
    for marker, key, cert in KIT_FILES:
        if (startup / marker).is_file():
            return startup / key, startup / cert
    raise KitKeyError(f"{startup}: holds {ROOT_CA} but neither fed_server.json nor fed_client.json: not a kit")


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def kit_signer(workspace: Path) -> LineSigner | None:
    """The kit's signer; None where ``workspace`` is no provisioned kit (simulator); KitKeyError
    for a kit whose private key is missing, unreadable or not the key of its certificate."""
    if not is_provisioned(workspace):
        return None
    key_path, cert_path = _kit_paths(workspace)
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise KitKeyError(f"kit key or certificate cannot be read ({key_path}, {cert_path}): {e}") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, pub)
            != cert.public_key().public_bytes(serialization.Encoding.DER, pub)):
        raise KitKeyError(f"{key_path} is not the private key of {cert_path}")
    return LineSigner(key, common_name(cert))


def kit_certificate(workspace: Path, root_ca: Path | None = None) -> x509.Certificate | None:
    """The kit's certificate, checked to be issued by ``root_ca`` (default: the kit's own
    ``startup/rootCA.pem``); None where ``workspace`` is no kit; KitKeyError when it cannot be
    read or was not issued by that root CA."""
    if not is_provisioned(workspace):
        return None
    _, cert_path = _kit_paths(workspace)
    root_path = Path(root_ca) if root_ca else Path(workspace) / "startup" / ROOT_CA
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        root = x509.load_pem_x509_certificate(root_path.read_bytes())
    except (OSError, ValueError) as e:
        raise KitKeyError(f"certificate cannot be read ({cert_path}, {root_path}): {e}") from None
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise KitKeyError(f"{cert_path} was not issued by the root CA {root_path} ({e or 'bad signature'})") from None
    return cert
