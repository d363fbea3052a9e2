"""``consortium kit doctor KIT``: why a kit cannot connect (``consortium kit certs`` is
:mod:`consortium.admin.certs`).

FLARE says little when a kit cannot connect: a kit from another provisioning retries silently, a
certificate that does not match its root CA hangs. The doctor checks, in order, and stops at the
first cause it finds: the kit's files, the clock against the certificate's validity, the key
against the certificate, the certificate against the kit's root CA, the server's name (it must
resolve), the server's port (it must answer), the TLS handshake with the kit's own certificate
(the server's certificate must come from the kit's root CA and be issued for the name the kit
dials; the server must accept the kit's certificate), and the clock against the server's (the
``Date`` of its HTTP answer, when its driver is HTTP). A kit naming a consortium class path the
package no longer has stops the checks (re-provision it). Two findings only warn and never stop
the checks: the classes a server or site kit admits beyond the consortium's default allow-list
(and a missing job-content validator), and any secret in the kit (private key, ``cert.json``, CKKS
context) that its group or others can read.

Each finding names the file, the value and what to do.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509

from consortium.admin.kit import (
    EXPIRY_WARNING_DAYS,
    MAX_CLOCK_SKEW,
    Finding,
    Kit,
    common_name,
    key_matches,
    load_cert,
    names_of,
    signed_by,
    utc_now,
)
from consortium.admin.kit_checks import allow_list_finding, class_paths_finding, policies_finding, secrets_finding


def diagnose(folder: Path, now: dt.datetime | None = None, timeout: float = 5.0) -> list[Finding]:
    """The doctor's findings for the kit in ``folder``, in order; the last one is the first
    failure found (nothing is checked after it), or every check passed."""
    findings: list[Finding] = []
    for f in _checks(folder, utc_now(now), timeout):
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
        cert, root = load_cert(kit.cert), load_cert(kit.root)
    except ValueError as e:
        yield Finding("kit", False, f"{kit.cert} or {kit.root} is not a PEM certificate ({e})")
        return
    yield Finding("kit", True, f"{kit.kind} kit {kit.name!r} ({common_name(cert.subject)}, issued by {common_name(cert.issuer)})")

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
        matches = key_matches(cert, kit.key)
    except (ValueError, TypeError) as e:
        yield Finding("key", False, f"{kit.key} is not a readable private key ({e})")
        return
    if not matches:
        yield Finding("key", False, f"{kit.key} does not match {kit.cert} (the key of another certificate): "
                                    "use the key and certificate of the same kit")
        return
    yield Finding("key", True, f"{kit.key.name} matches {kit.cert.name}")

    if not signed_by(cert, root):
        yield Finding("root CA", False, f"{kit.cert} was not issued by this kit's {kit.root.name} ({common_name(root.subject)}): "
                                        f"the certificate comes from another provisioning ({common_name(cert.issuer)}); "
                                        "use the kit's own rootCA.pem, or request a kit from this consortium")
        return
    yield Finding("root CA", True, f"{kit.cert.name} is signed by {kit.root.name} ({common_name(root.subject)})")
    if kit.kind != "admin":
        policies = policies_finding(folder, kit.kind)
        yield policies
        if not policies.ok:
            return
    if kit.kind != "admin":
        classes = class_paths_finding(folder)
        yield classes
        if not classes.ok:
            return
        yield allow_list_finding(folder)
    yield secrets_finding(folder)
    if kit.kind == "server":
        return
    yield from _connect(kit, root, now, timeout)


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
            names = names_of(peer)
            if not _host_in(kit.host, names):
                yield Finding("server certificate", False, f"the kit dials {kit.host!r} but the server's certificate is for "
                                                           f"{sorted(names)}: wrong server name in the kit")
                return
            yield Finding("server certificate", True, f"issued by {common_name(root.subject)} for {sorted(names)}")
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
