"""A hospital admin's two kit commands: ``consortium certs`` (every kit's certificate, its expiry,
a warning ahead of it) and ``consortium doctor KIT`` (why a kit cannot connect).

FLARE says little when a kit cannot connect: a kit from another provisioning retries silently, a
certificate that does not match its root CA hangs. The doctor checks, in order, and stops at the
first cause it finds: the kit's files, the clock against the certificate's validity, the key
against the certificate, the certificate against the kit's root CA, the server's name (it must
resolve), the server's port (it must answer), the TLS handshake with the kit's own certificate
(the server's certificate must come from the kit's root CA and be issued for the name the kit
dials; the server must accept the kit's certificate), and the clock against the server's (the
``Date`` of its HTTP answer, when its driver is HTTP). Two findings only warn and never stop the
checks: the classes a server or site kit admits beyond the consortium's default allow-list (and
a missing job-content validator), and any secret in the kit (private key, ``cert.json``, CKKS
context) that its group or others can read.

Each finding names the file, the value and what to do.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import json
import socket
import ssl
from collections.abc import Iterator
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
            config = _read(path)
            client = config.get("client") or {}
            try:
                target = config["servers"][0]["service"]["target"]
            except (KeyError, IndexError, TypeError):
                raise ValueError(f"{path}: field 'servers[0].service.target' is missing") from None
            host, port = _host_port(path, "servers[0].service.target", target)
            return cls(folder, "site", str(client.get("fqsn") or folder.name), startup / client.get("ssl_cert", "client.crt"),
                       startup / client.get("ssl_private_key", "client.key"), startup / client.get("ssl_root_cert", "rootCA.pem"),
                       host, port)
        if (startup / "fed_admin.json").is_file():
            path = startup / "fed_admin.json"
            admin = _read(path).get("admin") or {}
            if not admin.get("host") or not isinstance(admin.get("port"), int):
                raise ValueError(f"{path}: fields 'admin.host' / 'admin.port' = {admin.get('host')!r} / {admin.get('port')!r} "
                                 "must name the server")
            return cls(folder, "admin", folder.name, startup / admin.get("client_cert", "client.crt"),
                       startup / admin.get("client_key", "client.key"), startup / admin.get("ca_cert", "rootCA.pem"),
                       str(admin["host"]), int(admin["port"]))
        if (startup / "fed_server.json").is_file():
            path = startup / "fed_server.json"
            server = (_read(path).get("servers") or [{}])[0]
            return cls(folder, "server", folder.name, startup / server.get("ssl_cert", "server.crt"),
                       startup / server.get("ssl_private_key", "server.key"), startup / server.get("ssl_root_cert", "rootCA.pem"))
        raise ValueError(f"{folder}: not a startup kit (no startup/fed_client.json, fed_admin.json or fed_server.json)")


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def _host_port(path: Path, field: str, value) -> tuple[str, int]:
    host, _, port = str(value).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{path}: field {field!r} = {value!r} is not host:port")
    return host, int(port)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _cn(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else name.rfc4514_string()


def _names(cert: x509.Certificate) -> set[str]:
    """The names a certificate is issued for: its SAN DNS names and IPs, and its CN."""
    names = {_cn(cert.subject)}
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


def _key_matches(cert: x509.Certificate, key_path: Path) -> bool:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(key_path.read_bytes(), password=None)
    return key.public_key().public_numbers() == cert.public_key().public_numbers()


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


def diagnose(folder: Path, now: dt.datetime | None = None, timeout: float = 5.0) -> list[Finding]:
    """The doctor's findings for the kit in ``folder``, in order; the last one is the first
    failure found (nothing is checked after it), or every check passed."""
    findings: list[Finding] = []
    for f in _checks(folder, _now(now), timeout):
        findings.append(f)
        if not f.ok:
            break
    return findings


def _checks(folder: Path, now: dt.datetime, timeout: float) -> Iterator[Finding]:
    try:
        kit = Kit.load(folder)
    except ValueError as e:
        yield Finding("kit", False, str(e))
        return
    for path in (kit.cert, kit.key, kit.root):
        if not path.is_file():
            yield Finding("kit", False, f"{path} is missing: the kit is incomplete; unpack it again from the provisioning")
            return
    try:
        cert, root = _cert(kit.cert), _cert(kit.root)
    except ValueError as e:
        yield Finding("kit", False, f"{kit.cert} or {kit.root} is not a PEM certificate ({e})")
        return
    yield Finding("kit", True, f"{kit.kind} kit {kit.name!r} ({_cn(cert.subject)}, issued by {_cn(cert.issuer)})")

    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        yield Finding("clock", False, f"this machine's clock ({now:%Y-%m-%d %H:%M} UTC) is before {kit.cert.name}'s start "
                                      f"({start:%Y-%m-%d %H:%M} UTC): clock skew; set the clock (NTP)")
        return
    if now > end:
        yield Finding("certificate", False, f"{kit.cert} expired on {end:%Y-%m-%d} (now {now:%Y-%m-%d}); request a new kit, "
                                            "or set this machine's clock if it is ahead")
        return
    days = (end - now).days
    yield Finding("certificate", True, f"valid until {end:%Y-%m-%d} ({days} days)"
                  + (f"; renew within {days} days" if days < EXPIRY_WARNING_DAYS else ""))

    try:
        matches = _key_matches(cert, kit.key)
    except (ValueError, TypeError) as e:
        yield Finding("key", False, f"{kit.key} is not a readable private key ({e})")
        return
    if not matches:
        yield Finding("key", False, f"{kit.key} does not match {kit.cert} (the key of another certificate): "
                                    "use the key and certificate of the same kit")
        return
    yield Finding("key", True, f"{kit.key.name} matches {kit.cert.name}")

    if not signed_by(cert, root):
        yield Finding("root CA", False, f"{kit.cert} was not issued by this kit's {kit.root.name} ({_cn(root.subject)}): "
                                        f"the certificate comes from another provisioning ({_cn(cert.issuer)}); "
                                        "use the kit's own rootCA.pem, or request a kit from this consortium")
        return
    yield Finding("root CA", True, f"{kit.cert.name} is signed by {kit.root.name} ({_cn(root.subject)})")
    if kit.kind != "admin":
        policies = _policies(folder, kit.kind)
        yield policies
        if not policies.ok:
            return
    if kit.kind != "admin":
        yield _allow_list(folder)
    yield _secrets(folder)
    if kit.kind == "server":
        return
    yield from _connect(kit, root, now, timeout)


def _policies(folder: Path, kind: str) -> Finding:
    """The kit's site policies against the root CA's signatures (``SitePoliciesBuilder``). FLARE
    checks only the startup files present: an edited server policy stops our server audit at start,
    and a deleted audit declaration goes unnoticed by FLARE, so the server fails here. A site's
    ``local/`` is its own to change: a site's difference is reported, and the checks go on."""
    from consortium.flare.kit_policies import policy_signature_problems

    if not (Path(folder) / "local" / "signature.json").is_file():
        return Finding("policies", True, "not signed (a kit packaged from a request: its HE keys carry their own "
                                         "signatures); nothing to check")
    problems = policy_signature_problems(Path(folder))
    if not problems:
        return Finding("policies", True, "the site policies and audit declaration are those the root CA signed")
    if kind == "server":
        return Finding("policies", False, "; ".join(problems) + ": the server refuses to start, or runs without its audit; "
                                          "re-provision the server kit")
    return Finding("policies", True, "WARNING, changed since provisioning (the site's own choice?): " + "; ".join(problems))


def _allow_list(folder: Path) -> Finding:
    """What the kit admits beyond the consortium's default list (a site's own choice: reported,
    the checks go on), and whether its startup declares the job-content validator."""
    from consortium.admin.kit_exposure import admitted_beyond_default

    try:
        a = admitted_beyond_default(folder)
    except ValueError as e:
        return Finding("allow-list", False, f"{e}: re-provision the kit")
    notes = []
    if a.beyond:
        notes.append(f"admits {len(a.beyond)} class(es) beyond the consortium's default: {', '.join(a.beyond)}")
    if a.malformed:
        notes.append("entries that admit whole packages or the command line, refused by the consortium's resolver but "
                     "honoured by FLARE's authorizer: " + "; ".join(f"{e!r} ({why})" for e, why in a.malformed))
    if not a.validator:
        notes.append("startup declares no job-content validator (app_validator): jobs carrying files other than "
                     "their configs are not refused here")
    if not notes:
        return Finding("allow-list", True, f"the consortium's default classes only ({a.source.name}), job content checked")
    return Finding("allow-list", True, f"WARNING, {a.source}: " + "; ".join(notes))


def _secrets(folder: Path) -> Finding:
    from consortium.admin.kit_exposure import readable_secrets

    exposed = readable_secrets(folder)
    if not exposed:
        return Finding("secrets", True, "every private key, context and cert.json is readable by its owner only")
    listed = ", ".join(f"{p} (mode {m:o})" for p, m in exposed)
    return Finding("secrets", True, f"WARNING, readable by group or others: {listed}; run chmod 600 on each")


def _connect(kit: Kit, root: x509.Certificate, now: dt.datetime, timeout: float) -> Iterator[Finding]:
    where = f"{kit.host}:{kit.port}"
    try:
        addresses = socket.getaddrinfo(kit.host, kit.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        yield Finding("server name", False, f"{kit.host!r} (the server the kit dials) does not resolve ({e.strerror}): "
                                            "wrong server name, or add it to DNS or /etc/hosts")
        return
    yield Finding("server name", True, f"{kit.host} resolves to {addresses[0][4][0]}")
    try:
        sock = socket.create_connection((kit.host, kit.port), timeout=timeout)
    except OSError as e:
        why = "refused" if isinstance(e, ConnectionRefusedError) else "timed out" if isinstance(e, TimeoutError) else str(e)
        yield Finding("server reachable", False, f"nothing answers at {where} ({why}): is the server started, "
                                                 "and the port open between this site and the server?")
        return
    yield Finding("server reachable", True, f"{where} accepts connections")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # checked below against the names in the server's certificate
    context.load_verify_locations(cafile=str(kit.root))
    context.load_cert_chain(str(kit.cert), str(kit.key))
    try:
        with context.wrap_socket(sock, server_hostname=kit.host) as tls:
            peer = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
            names = _names(peer)
            if not _host_in(kit.host, names):
                yield Finding("server certificate", False, f"the kit dials {kit.host!r} but the server's certificate is for "
                                                           f"{sorted(names)}: wrong server name in the kit")
                return
            yield Finding("server certificate", True, f"issued by {_cn(root.subject)} for {sorted(names)}")
            tls.settimeout(timeout)
            try:
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {kit.host}\r\nConnection: close\r\n\r\n".encode())
                answer = tls.recv(4096).decode("latin-1")
            except ssl.SSLError as e:  # TLS 1.3: the server refuses a client certificate after the handshake
                yield Finding("server accepts the kit", False, _refusal(e))
                return
            except OSError:
                answer = ""
            yield Finding("server accepts the kit", True, "mutual TLS completed")
            yield _clock_against(answer, now)
    except ssl.SSLCertVerificationError as e:
        yield Finding("server certificate", False, _verify_failure(e, kit))
    except ssl.SSLError as e:
        yield Finding("server accepts the kit", False, _refusal(e))
    except OSError as e:
        yield Finding("server accepts the kit", False, f"the TLS handshake with {where} failed ({e}): is it the FLARE server's port?")


def _host_in(host: str, names: set[str]) -> bool:
    try:
        ip = str(ipaddress.ip_address(host))
        return ip in names
    except ValueError:
        return host.lower() in {n.lower() for n in names}


def _verify_failure(e: ssl.SSLCertVerificationError, kit: Kit) -> str:
    reason = e.verify_message or str(e)
    if "expired" in reason or "not yet valid" in reason:
        return (f"the server's certificate is {reason} by this machine's clock: clock skew between this machine and the "
                "server's certificate; set the clock (NTP)")
    return (f"the server's certificate was not issued by this kit's {kit.root.name} ({reason}): a foreign root CA; "
            "the kit comes from another provisioning than the server's")


def _refusal(e: ssl.SSLError) -> str:
    reason = getattr(e, "reason", None) or str(e)
    return (f"the server refused this kit's certificate ({reason}): it was not issued by the server's root CA "
            "(a kit from another provisioning), or the site is not admitted")


def _clock_against(answer: str, now: dt.datetime) -> Finding:
    for line in answer.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "date":
            try:
                server = email.utils.parsedate_to_datetime(value.strip())
            except (TypeError, ValueError):
                break
            skew = (now - server).total_seconds()
            if abs(skew) > MAX_CLOCK_SKEW:
                return Finding("clock", False, f"this machine's clock is {skew:+.0f} s off the server's "
                                               f"({server:%Y-%m-%d %H:%M:%S} UTC): clock skew; set both clocks (NTP)")
            return Finding("clock", True, f"{skew:+.0f} s from the server's clock")
    return Finding("clock", True, "the server sent no HTTP date; skew against its clock not measured")


@dataclass(frozen=True)
class CertificateRow:
    kit: str
    kind: str
    subject: str
    issuer: str
    not_after: dt.datetime
    days_left: int

    def line(self, warn_days: int = EXPIRY_WARNING_DAYS) -> str:
        flag = "EXPIRED" if self.days_left < 0 else f"renew within {self.days_left} days" if self.days_left < warn_days else ""
        return (f"{self.kit:32s} {self.kind:6s} {self.subject:32s} {self.issuer:20s} {self.not_after:%Y-%m-%d} "
                f"{self.days_left:5d} {flag}").rstrip()


def certificates(kits: Path, now: dt.datetime | None = None) -> list[CertificateRow]:
    """Every kit's certificate under ``kits`` (a provisioning's ``prod_NN`` folder, or one kit)."""
    now = _now(now)
    folders = [kits] if (kits / "startup").is_dir() else sorted(p for p in kits.iterdir() if (p / "startup").is_dir())
    if not folders:
        raise ValueError(f"{kits}: no startup kits here (a folder with startup/, or a prod_NN folder of them)")
    rows = []
    for folder in folders:
        kit = Kit.load(folder)
        cert = _cert(kit.cert)
        end = cert.not_valid_after_utc
        rows.append(CertificateRow(folder.name, kit.kind, _cn(cert.subject), _cn(cert.issuer), end, (end - now).days))
    return rows
