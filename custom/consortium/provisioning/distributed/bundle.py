"""What the project admin sends a hospital beside FLARE's signed zip, and how the hospital checks it.

FLARE's ``nvflare cert approve`` returns ``NAME.signed.zip`` (certificate, root CA, signed
metadata; FLARE refuses any other member in it). A consortium kit needs more: the site policy
templates with the consortium's project.yml (to run :func:`~consortium.provisioning.provision.install_site_policies`
at the hospital) and, where the consortium uses HE, its CKKS contexts. ``consortium site approve``
therefore writes ``NAME.approved.zip``::

    NAME.signed.zip                  FLARE's, byte for byte
    consortium/manifest.json         project, name, org, request id, SHA-256 of every other member
    consortium/manifest.json.sig     root CA signature of manifest.json (FLARE's PSS/SHA-256 scheme)
    consortium/project.yml           the consortium's participants and builders
    consortium/site_policies/*.json  authorization.json, class_allow_list.json, privacy.json
    consortium/client_context.enc    HE only: the secret CKKS context, sealed to the site's key
    consortium/server_context.tenseal  HE only: the public context (names the key)
    consortium/he_signature.json     HE only: root CA signatures of both contexts, FLARE's
                                       signature.json format

The secret CKKS context travels sealed (RSA-OAEP-SHA256 wraps a fresh AES-256-GCM key; the
associated data binds project, site and request id) to the public key of the certificate the CA
just signed: only the holder of the site's private key, which never left the hospital, opens it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ARTIFACT = "consortium.approval"
VERSION = 1
PREFIX = "consortium/"
MANIFEST = PREFIX + "manifest.json"
MANIFEST_SIG = PREFIX + "manifest.json.sig"
PROJECT = PREFIX + "project.yml"
POLICIES = tuple(PREFIX + "site_policies/" + f for f in ("authorization.json", "class_allow_list.json", "privacy.json"))
CLIENT_SEALED = PREFIX + "client_context.enc"
SERVER_CONTEXT = PREFIX + "server_context.tenseal"
HE_SIGNATURE = PREFIX + "he_signature.json"
HE_MEMBERS = (CLIENT_SEALED, SERVER_CONTEXT, HE_SIGNATURE)
MAX_MEMBER = 64 * 1024 * 1024
MAX_MEMBERS = 16
SEAL_ALG = "RSA-OAEP-SHA256+AES-256-GCM"


class BundleError(ValueError):
    """An approval bundle that cannot be trusted or used; the message names the file and field."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seal(data: bytes, public_key: rsa.RSAPublicKey, context: str) -> bytes:
    """``data`` encrypted for the holder of ``public_key``'s private key; ``context`` is
    authenticated (a sealed file moved to another site or request does not open)."""
    key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(12)
    wrapped = public_key.encrypt(key, _oaep())
    body = AESGCM(key).encrypt(nonce, data, context.encode())
    fields = {"alg": SEAL_ALG, "context": context, "wrapped_key": wrapped, "nonce": nonce, "ciphertext": body}
    return json.dumps({k: v if isinstance(v, str) else base64.b64encode(v).decode() for k, v in fields.items()}).encode()


def unseal(sealed: bytes, private_key: rsa.RSAPrivateKey, context: str, source: str) -> bytes:
    try:
        d = json.loads(sealed)
        if d.get("alg") != SEAL_ALG or d.get("context") != context:
            raise BundleError(f"{source}: sealed for {d.get('context')!r} with {d.get('alg')!r}, expected {context!r}")
        key = private_key.decrypt(base64.b64decode(d["wrapped_key"]), _oaep())
        return AESGCM(key).decrypt(base64.b64decode(d["nonce"]), base64.b64decode(d["ciphertext"]), context.encode())
    except BundleError:
        raise
    except Exception as e:  # wrong key, altered bytes, malformed JSON: one answer, fail closed
        raise BundleError(f"{source}: cannot open with this site's private key ({type(e).__name__}): "
                          "it was sealed for another key or altered") from None


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@dataclass
class Bundle:
    """The members of an approval bundle (name -> bytes) with its manifest."""

    manifest: dict
    members: dict[str, bytes] = field(default_factory=dict)

    @property
    def carries_he_contexts(self) -> bool:
        """Whether the approval carries the HE contexts (the project makes HE keys)."""
        return bool(self.manifest.get("he"))

    def write(self, path: Path, signing_key) -> None:
        from nvflare.lighter.utils import sign_content

        manifest = {**self.manifest, "artifact": ARTIFACT, "version": VERSION,
                    "files": {n: sha256(b) for n, b in sorted(self.members.items())}}
        raw = json.dumps(manifest, indent=2, sort_keys=True).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in self.members.items():
                zf.writestr(name, data)
            zf.writestr(MANIFEST, raw)
            zf.writestr(MANIFEST_SIG, sign_content(raw, signing_key))
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> tuple[Bundle, bytes, bytes]:
        """The bundle's members, its raw manifest and the manifest's signature, unverified (see
        :meth:`verify`, which accepts exactly the members the signed manifest names)."""
        try:
            with zipfile.ZipFile(path) as zf:
                infos = {i.filename: i for i in zf.infolist()}
                if len(infos) > MAX_MEMBERS:
                    raise BundleError(f"{path}: {len(infos)} members; an approval bundle has at most {MAX_MEMBERS}")
                big = [n for n, i in infos.items() if i.file_size > MAX_MEMBER]
                if big:
                    raise BundleError(f"{path}: member {big[0]} is over {MAX_MEMBER} bytes")
                data = {n: zf.read(n) for n in infos}
        except (zipfile.BadZipFile, OSError) as e:
            raise BundleError(f"{path}: not a readable approval bundle ({e})") from None
        if MANIFEST not in data or MANIFEST_SIG not in data:
            raise BundleError(f"{path}: missing {MANIFEST} or {MANIFEST_SIG}: not made by `consortium site approve`")
        raw, signature = data.pop(MANIFEST), data.pop(MANIFEST_SIG)
        try:
            manifest = json.loads(raw)
        except json.JSONDecodeError as e:
            raise BundleError(f"{path}: {MANIFEST} is not valid JSON ({e})") from None
        if not isinstance(manifest, dict):
            raise BundleError(f"{path}: {MANIFEST} must be a JSON object")
        return cls(manifest, data), raw, signature

    def verify(self, raw_manifest: bytes, signature: bytes, root_public_key, source: Path) -> None:
        """BundleError unless the manifest is signed by the root CA, names exactly the members
        present, and every member has the hash it lists."""
        from nvflare.lighter.utils import verify_content

        try:
            verify_content(raw_manifest, signature.decode(), root_public_key)
        except Exception:
            raise BundleError(f"{source}: {MANIFEST_SIG} is not the root CA's signature of {MANIFEST}: "
                              "the bundle was altered or signed by another CA") from None
        m = self.manifest
        if m.get("artifact") != ARTIFACT or m.get("version") != VERSION:
            raise BundleError(f"{source}: {MANIFEST} fields artifact/version = {m.get('artifact')!r}/{m.get('version')!r}, "
                              f"expected {ARTIFACT!r}/{VERSION}")
        expected = {f"{m.get('name')}.signed.zip", PROJECT, *POLICIES, *(HE_MEMBERS if self.carries_he_contexts else ())}
        files = m.get("files") or {}
        if set(files) != expected or set(self.members) != expected:
            raise BundleError(f"{source}: members {sorted(self.members)} (manifest lists {sorted(files)}); "
                              f"expected exactly {sorted(expected)}")
        for name, digest in files.items():
            if sha256(self.members[name]) != digest:
                raise BundleError(f"{source}: member {name} does not match its SHA-256 in {MANIFEST} (altered)")


def seal_context(project: str, name: str, request_id: str) -> str:
    return f"{project}/{name}/{request_id}/client_context.tenseal"
