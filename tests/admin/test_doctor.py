"""`consortium kit doctor` names why a kit cannot connect, against a TLS server holding a real
provisioned server certificate; `consortium kit certs` lists every kit's expiry."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
import shutil
import socket
import ssl
import threading
from pathlib import Path

import pytest

from consortium.admin.certs import certificates
from consortium.admin.doctor import diagnose
from consortium.defaults import DEFAULT_PROJECT
from consortium.provisioning.project import Project
from consortium.provisioning.provision import provision


@pytest.fixture(scope="module")
def consortia(tmp_path_factory):
    """Two provisionings of the project (POC: the server is ``localhost``): two root CAs."""
    project = Project.load(DEFAULT_PROJECT)
    return tuple(provision(project, tmp_path_factory.mktemp(name), poc=True) for name in ("a", "b"))


class TLSServer:
    """A server socket with a provisioned server certificate that requires a client certificate
    from ``client_root`` and answers one HTTP request with a ``Date`` (``skew`` seconds off)."""

    def __init__(self, server_kit: Path, client_root: Path, skew: float = 0.0) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(server_kit / "startup" / "server.crt"), str(server_kit / "startup" / "server.key"))
        self.context.load_verify_locations(cafile=str(client_root))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.skew = skew
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    date = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.skew), usegmt=True)
                    tls.sendall(f"HTTP/1.1 404 Not Found\r\nDate: {date}\r\nContent-Length: 0\r\n\r\n".encode())
            except OSError:  # a refused client certificate, a client that went away
                conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def server_a(consortia):
    a, _ = consortia
    server = TLSServer(a / "server", a / "server" / "startup" / "rootCA.pem")
    yield server
    server.close()


def site_kit(tmp_path: Path, kits: Path, port: int, host: str = "localhost", name: str = "hungary") -> Path:
    kit = Path(shutil.copytree(kits / name, tmp_path / f"{name}-{kits.parent.parent.name}"))
    path = kit / "startup" / "fed_client.json"
    config = json.loads(path.read_text())
    config["servers"][0]["service"]["target"] = f"{host}:{port}"
    path.write_text(json.dumps(config))
    return kit


def last(findings) -> tuple[str, bool, str]:
    f = findings[-1]
    return f.check, f.ok, f.detail


def test_a_healthy_kit_passes_every_check(consortia, server_a, tmp_path):
    findings = diagnose(site_kit(tmp_path, consortia[0], server_a.port))
    assert [f.check for f in findings] == ["kit", "certificate", "key", "root CA", "policies", "class paths", "allow-list", "secrets",
                                           "server name",
                                           "server reachable", "server certificate", "server accepts the kit", "clock"]
    assert all(f.ok for f in findings), [f.line() for f in findings]


def test_a_kit_naming_a_class_path_the_package_no_longer_has_is_told_to_re_provision(consortia, server_a, tmp_path):
    kit = site_kit(tmp_path, consortia[0], server_a.port)
    resources = kit / "local" / "resources.json"
    moved = "consortium.flare.executors.tabular.TabularExecutor"
    before = "consortium.flare.tabular_executor.TabularExecutor"  # its path before the package moved (issue 22)
    assert moved in resources.read_text()
    resources.write_text(resources.read_text().replace(moved, before))
    check, ok, detail = last(diagnose(kit))
    assert (check, ok) == ("class paths", False), detail
    assert str(resources) in detail and repr(before) in detail and "re-provision" in detail


def test_a_kit_from_another_provisioning_is_named_a_foreign_root_ca(consortia, server_a, tmp_path):
    check, ok, detail = last(diagnose(site_kit(tmp_path, consortia[1], server_a.port)))
    assert (check, ok) == ("server certificate", False) and "foreign root CA" in detail


def test_a_key_of_another_certificate_is_named(consortia, server_a, tmp_path):
    kit = site_kit(tmp_path, consortia[0], server_a.port)
    shutil.copy(consortia[1] / "hungary" / "startup" / "client.key", kit / "startup" / "client.key")
    check, ok, detail = last(diagnose(kit))
    assert (check, ok) == ("key", False) and "does not match" in detail and "client.key" in detail


def test_a_certificate_that_does_not_match_the_kit_s_root_ca_is_named(consortia, server_a, tmp_path):
    kit = site_kit(tmp_path, consortia[0], server_a.port)
    for name in ("client.crt", "client.key"):
        shutil.copy(consortia[1] / "hungary" / "startup" / name, kit / "startup" / name)
    check, ok, detail = last(diagnose(kit))
    assert (check, ok) == ("root CA", False) and "another provisioning" in detail


def test_a_server_that_does_not_admit_the_kit_s_root_is_named(consortia, tmp_path):
    a, b = consortia  # b's server certificate, but it admits only a's sites
    server = TLSServer(b / "server", a / "server" / "startup" / "rootCA.pem")
    try:
        check, ok, detail = last(diagnose(site_kit(tmp_path, b, server.port)))
    finally:
        server.close()
    assert (check, ok) == ("server accepts the kit", False) and "refused this kit's certificate" in detail


@pytest.mark.parametrize("host, check, words", [("127.0.0.1", "server certificate", "wrong server name"),
                                                ("no-such-server.invalid", "server name", "does not resolve")])
def test_a_wrong_server_name_is_named(consortia, server_a, tmp_path, host, check, words):
    got = last(diagnose(site_kit(tmp_path, consortia[0], server_a.port, host=host)))
    assert got[:2] == (check, False) and words in got[2]


def test_an_unreachable_server_is_named(consortia, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        got = last(diagnose(site_kit(tmp_path, consortia[0], port)))
    assert got[:2] == ("server reachable", False) and "refused" in got[2]


def test_clock_skew_is_named_against_the_certificate_and_against_the_server(consortia, tmp_path):
    a, _ = consortia
    server = TLSServer(a / "server", a / "server" / "startup" / "rootCA.pem", skew=3600)
    try:
        kit = site_kit(tmp_path, a, server.port)
        against_server = last(diagnose(kit))
        long_ago = last(diagnose(kit, now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    finally:
        server.close()
    skew = re.search(r"clock is ([-+]\d+) s off the server's", against_server[2])
    assert against_server[:2] == ("clock", False) and skew and abs(int(skew.group(1)) + 3600) <= 5, against_server
    assert long_ago[:2] == ("clock", False) and "clock skew" in long_ago[2]


def test_certs_lists_every_kit_and_warns_ahead_of_expiry(consortia):
    a, _ = consortia
    rows = certificates(a)
    assert {r.kit for r in rows} >= {"server", "hungary", "cleveland", "admin@consortium.org"}
    assert {r.kind for r in rows} == {"server", "site", "admin"} and all(r.issuer == "heart_consortium" for r in rows)
    soon = rows[0].not_after - dt.timedelta(days=10)
    assert "renew within" in certificates(a, now=soon)[0].line() and "renew" not in rows[0].line()


def test_a_server_kit_with_an_edited_policy_or_no_audit_declaration_fails_and_a_site_s_change_is_a_warning(consortia, tmp_path):
    server = Path(shutil.copytree(consortia[0] / "server", tmp_path / "server"))
    assert all(f.ok for f in diagnose(server)) and "policies" in [f.check for f in diagnose(server)]

    authz = server / "local" / "authorization.json"
    authz.write_text(authz.read_text().replace('"byoc": "none"', '"byoc": "any"', 1))
    check, ok, detail = last(diagnose(server))
    assert (check, ok) == ("policies", False) and "authorization.json" in detail

    shutil.copy(consortia[0] / "server" / "local" / "authorization.json", authz)
    (server / "startup" / "consortium_audit__p_resources.json").unlink()
    check, ok, detail = last(diagnose(server))
    assert (check, ok) == ("policies", False) and "consortium_audit__p_resources.json: missing" in detail

    site = site_kit(tmp_path, consortia[0], 1)
    privacy = site / "local" / "privacy.json"
    privacy.write_text(privacy.read_text().replace('"default_scope": "no_dp"', '"default_scope": "dp"'))
    policies = next(f for f in diagnose(site, timeout=0.5) if f.check == "policies")
    assert policies.ok and policies.detail.startswith("WARNING") and "privacy.json" in policies.detail


def test_a_folder_that_is_not_a_kit_is_named(tmp_path):
    findings = diagnose(tmp_path)
    assert last(findings)[:2] == ("kit", False) and "not a startup kit" in findings[-1].detail


def test_the_commands_print_every_finding_and_exit_1_at_the_first_failure(consortia, tmp_path, capsys):
    from consortium.cli.main import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        rc = main(["kit", "doctor", str(site_kit(tmp_path, consortia[0], s.getsockname()[1])), "--timeout", "2"])
    out = capsys.readouterr().out
    assert rc == 1 and out.splitlines()[-1].startswith("FAIL  server reachable") and out.count("ok ") == 9
    assert main(["kit", "certs", str(consortia[0])]) == 0
    assert "hungary" in capsys.readouterr().out


def finding(kit: Path, check: str):
    return next(f for f in diagnose(kit, timeout=0.5) if f.check == check)


def test_the_doctor_lists_what_a_site_admits_beyond_the_default(consortia, tmp_path):
    site = site_kit(tmp_path, consortia[0], 1)
    assert finding(site, "allow-list").detail.startswith("the consortium's default classes only")
    resources = site / "local" / "resources.json"
    config = json.loads(resources.read_text())
    config["class_allow_list"] += ["hospital.models.OurNet", "consortium.", "consortium.cli.main.main"]
    resources.write_text(json.dumps(config))
    f = finding(site, "allow-list")
    assert f.ok and f.detail.startswith(f"WARNING, {resources}: admits 1 class(es) beyond the consortium's default: "
                                        "hospital.models.OurNet;")
    assert "'consortium.' (package prefixes are not admitted" in f.detail
    assert "'consortium.cli.main.main' (consortium.cli is never a job component" in f.detail


def test_the_doctor_warns_when_a_kit_declares_no_job_content_validator(consortia, tmp_path):
    site = site_kit(tmp_path, consortia[0], 1)
    fed = site / "startup" / "fed_client.json"
    config = json.loads(fed.read_text())
    del config["app_validator"]
    fed.write_text(json.dumps(config))
    assert "declares no job-content validator" in finding(site, "allow-list").detail


def test_the_doctor_warns_about_a_secret_readable_by_others(consortia, tmp_path):
    site = site_kit(tmp_path, consortia[0], 1)
    assert finding(site, "secrets").detail.startswith("every private key")
    key = site / "startup" / "client.key"
    key.chmod(0o644)
    f = finding(site, "secrets")
    assert f.ok and f.detail == f"WARNING, readable by group or others: {key} (mode 644); run chmod 600 on each"
