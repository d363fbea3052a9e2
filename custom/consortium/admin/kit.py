"""A startup kit as the admin commands read it (:class:`Kit`: which participant, its certificate,
key, root CA and server address) and the certificate helpers they share; a :class:`Finding` is
one named check's result."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

MAX_CLOCK_SKEW = 300.0  # seconds; certificates and FLARE's tokens tolerate little more
EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok ' if self.ok else 'FAIL'}  {self.check}: {self.detail}"


@dataclass(frozen=True)
class Kit:
    """What a startup kit holds: its kind (site, admin, server), certificate, key, root CA and,
    for a site or an admin, the server it dials."""

    folder: Path
    kind: str
    name: str
    cert: Path
    key: Path
    root: Path
    host: str | None = None
    port: int | None = None

    @classmethod
    def load(cls, folder: Path) -> Kit:
        startup = folder / "startup" if (folder / "startup").is_dir() else folder
        if (startup / "fed_client.json").is_file():
            path = startup / "fed_client.json"
            config = read_json_file(path)
            client = config.get("client") or {}
            try:
                target = config["servers"][0]["service"]["target"]
            except (KeyError, IndexError, TypeError):
                raise ValueError(f"{path}: field 'servers[0].service.target' is missing") from None
            host, port = host_port(path, "servers[0].service.target", target)
            return cls(folder, "site", str(client.get("fqsn") or folder.name), startup / client.get("ssl_cert", "client.crt"),
                       startup / client.get("ssl_private_key", "client.key"), startup / client.get("ssl_root_cert", "rootCA.pem"),
                       host, port)
        if (startup / "fed_admin.json").is_file():
            path = startup / "fed_admin.json"
            admin = read_json_file(path).get("admin") or {}
            if not admin.get("host") or not isinstance(admin.get("port"), int):
                raise ValueError(f"{path}: fields 'admin.host' / 'admin.port' = {admin.get('host')!r} / {admin.get('port')!r} "
                                 "must name the server")
            return cls(folder, "admin", folder.name, startup / admin.get("client_cert", "client.crt"),
                       startup / admin.get("client_key", "client.key"), startup / admin.get("ca_cert", "rootCA.pem"),
                       str(admin["host"]), int(admin["port"]))
        if (startup / "fed_server.json").is_file():
            path = startup / "fed_server.json"
            server = (read_json_file(path).get("servers") or [{}])[0]
            return cls(folder, "server", folder.name, startup / server.get("ssl_cert", "server.crt"),
                       startup / server.get("ssl_private_key", "server.key"), startup / server.get("ssl_root_cert", "rootCA.pem"))
        raise ValueError(f"{folder}: not a startup kit (no startup/fed_client.json, fed_admin.json or fed_server.json)")


def read_json_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def host_port(path: Path, field: str, value) -> tuple[str, int]:
    host, _, port = str(value).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{path}: field {field!r} = {value!r} is not host:port")
    return host, int(port)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def common_name(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else name.rfc4514_string()


def names_of(cert: x509.Certificate) -> set[str]:
    """The names a certificate is issued for: its SAN DNS names and IPs, and its CN."""
    names = {common_name(cert.subject)}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names |= set(san.get_values_for_type(x509.DNSName)) | {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    except x509.ExtensionNotFound:
        pass
    return names


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return cert.issuer == issuer.subject


def key_matches(cert: x509.Certificate, key_path: Path) -> bool:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(key_path.read_bytes(), password=None)
    return key.public_key().public_numbers() == cert.public_key().public_numbers()


def utc_now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)
