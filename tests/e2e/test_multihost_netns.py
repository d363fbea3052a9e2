"""The production kits across real network hosts: the FLARE server, each hospital and the
project admin in their own Linux network namespace, each with its own address on a private veth
network that this test makes, the server's name (``server``, as project.yml provisions it)
resolved in every namespace by ``/etc/netns/<ns>/hosts``. A heart FedAvg job submitted by the
project admin from its namespace runs end to end, every hospital contributing to every round.

The network: a hub namespace holding a bridge, one veth pair per participant between the hub
and the participant's namespace, addresses in 10.201.0.0/24. Nothing is added to the root
namespace, so no traffic of this test leaves the namespaces it made, and concurrent runs (each
with its own short id in every name) cannot meet. Every process is started with
``ip netns exec`` and stopped by its process group and, for job processes FLARE starts in their
own session, by ``ip netns pids``; then the namespaces and their ``/etc/netns`` folders are
deleted, also when a test fails.

Needs root and iproute2 (``ip``, ``ss``): skipped with the reason where namespaces cannot be made.
Run as a script (``python this_file.py admin ...``), this file is the admin client that the test
starts inside the admin's namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.201.0"
SERVER_ADDRESS = f"{SUBNET}.1"
ADMIN_ADDRESS = f"{SUBNET}.2"
FL_PORT = 8002  # provisioning/project.yml: the server's fed_learn_port (admin on the same port)
ROUNDS = 2
START_TIMEOUT_S = 90.0  # every site connected to the server
JOB_TIMEOUT_S = 240.0  # the admin client: log in, wait for the sites, run the job, download it
NETNS_DIR = Path("/etc/netns")
CONNECTION = re.compile(rf"Connection \[CN\d+ ([\d.]+):{FL_PORT} <= ([\d.]+):\d+ SSL ([^\]\s]+)\]")


# ---------------------------------------------------------------- the admin client (a script)

def admin_main(argv: list[str]) -> int:
    """Inside the admin's namespace: log in with the production admin kit (server reached by name),
    wait until every site is registered, submit the job, follow it, download its result. Prints
    one JSON line: job id, final status, registered sites, result folder."""
    import contextlib as cl
    import io

    from nvflare.fuel.flare_api.flare_api import new_secure_session

    user, kit, job, results, sites, timeout = argv[0], argv[1], argv[2], argv[3], set(argv[4].split(",")), float(argv[5])
    deadline = time.monotonic() + timeout
    out: dict = {"status": "", "sites": []}

    def fail(why: str) -> int:
        print(json.dumps({**out, "error": why}), flush=True)
        return 1

    while True:
        try:
            with cl.redirect_stdout(io.StringIO()):
                sess = new_secure_session(user, kit, timeout=15.0)
            break
        except Exception as e:  # the server may still be starting
            if time.monotonic() > deadline:
                return fail(f"cannot log in to the server as {user} with kit {kit}: {e}")
            time.sleep(1.0)
    try:
        while not sites <= set(out["sites"]):
            out["sites"] = sorted(c.name for c in sess.get_system_info().client_info)
            if time.monotonic() > deadline:
                return fail(f"only {out['sites']} of {sorted(sites)} registered with the server")
            time.sleep(0.5)
        out["job_id"] = sess.submit_job(job)
        while not out["status"].startswith("FINISHED"):
            if time.monotonic() > deadline:
                sess.abort_job(out["job_id"])
                return fail(f"job still {out['status']} after {timeout:.0f} s; aborted it")
            time.sleep(0.5)
            out["status"] = sess.get_job_meta(out["job_id"]).get("status", "")
        if out["status"] != "FINISHED:COMPLETED":
            return fail(f"job {out['job_id']} ended {out['status']}")
        out["result"] = sess.download_job_result(out["job_id"], results)
    finally:
        sess.close()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["admin"]:
        sys.exit(admin_main(sys.argv[2:]))
    sys.exit(f"usage: {sys.argv[0]} admin USER KIT JOB RESULTS SITE,SITE,... TIMEOUT_S")


# ---------------------------------------------------------------- the test

import pytest  # noqa: E402 - the admin client above runs without pytest

from conftest import JOBS  # noqa: E402

pytestmark = pytest.mark.poc


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result


def in_ns(ns: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)


def tail(path: Path, lines: int = 30) -> str:
    if not path.is_file():
        return f"--- {path}: missing"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- last {len(text)} lines of {path}:\n" + "\n".join(text)


UNAVAILABLE = ("not permitted", "permission denied", "unknown device type", "not supported")


class NetnsUnavailable(RuntimeError):
    """This machine does not let the test make its network (not root, a container without the
    capability, a kernel without veth or bridge)."""


@dataclass
class Host:
    name: str  # the participant (server, a site, the admin)
    ns: str
    address: str
    proc: subprocess.Popen | None = None


@dataclass
class Network:
    """Namespaces joined by a bridge in a hub namespace; undone by :meth:`delete`."""

    tid: str
    hub: str
    hosts: dict[str, Host] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)  # namespaces created, in order
    made_netns_dir: bool = False  # /etc/netns did not exist before this test

    @classmethod
    def create(cls, participants: dict[str, str]) -> Network:
        """``participants``: name -> address. Raises :class:`NetnsUnavailable` where this machine
        does not let the test make namespaces, veths or a bridge (after undoing what it made)."""
        taken = ip("netns", "list").stdout
        tid = secrets.token_hex(2)
        while f"mh{tid}-" in taken:
            tid = secrets.token_hex(2)
        net = cls(tid, f"mh{tid}-hub")
        try:
            net.add_namespace(net.hub)
            net.ip("-n", net.hub, "link", "add", "br0", "type", "bridge")
            net.ip("-n", net.hub, "link", "set", "br0", "up")
            for i, (name, address) in enumerate(participants.items()):
                host = Host(name, f"mh{tid}-{name}", address)
                net.add_namespace(host.ns)
                net.hosts[name] = host
                port = f"mh{tid}p{i}"  # the hub's end, at most 15 characters
                net.ip("-n", net.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host.ns)
                net.ip("-n", net.hub, "link", "set", port, "master", "br0", "up")
                net.ip("-n", host.ns, "addr", "add", f"{address}/24", "dev", "eth0")
                net.ip("-n", host.ns, "link", "set", "eth0", "up")
                net.ip("-n", host.ns, "link", "set", "lo", "up")
        except BaseException:
            net.delete()
            raise
        return net

    def add_namespace(self, ns: str) -> None:
        self.ip("netns", "add", ns)
        self.made.append(ns)

    @staticmethod
    def ip(*args: str) -> None:
        result = ip(*args, check=False)
        if result.returncode == 0:
            return
        error = result.stderr.strip()
        if any(s in error.lower() for s in UNAVAILABLE):
            raise NetnsUnavailable(f"`ip {' '.join(args)}`: {error}")
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({result.returncode}): {error}")

    def resolve(self, name: str, address: str) -> None:
        """``name`` -> ``address`` in every participant's namespace (``ip netns exec`` mounts
        ``/etc/netns/<ns>/hosts`` over ``/etc/hosts``)."""
        self.made_netns_dir = self.made_netns_dir or not NETNS_DIR.exists()
        for host in self.hosts.values():
            folder = NETNS_DIR / host.ns
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "hosts").write_text(f"127.0.0.1 localhost\n::1 localhost\n{address} {name}\n")

    def delete(self) -> list[str]:
        """Stop every process in these namespaces, delete them and their /etc/netns folders;
        returns what could not be undone."""
        problems = []
        for host in self.hosts.values():
            if host.proc is not None:
                stop_group(host.proc)
        for ns in self.made:
            kill_namespace_processes(ns)
        for ns in reversed(self.made):
            gone = ip("netns", "del", ns, check=False)
            if gone.returncode != 0:
                problems.append(f"namespace {ns}: {gone.stderr.strip()}")
            shutil.rmtree(NETNS_DIR / ns, ignore_errors=True)
        if self.made_netns_dir:
            with contextlib.suppress(OSError):  # not empty: another run's namespaces use it
                NETNS_DIR.rmdir()
        left = [ns for ns in self.made if ns in ip("netns", "list").stdout.split()]
        return problems + [f"namespace {ns} still listed" for ns in left]


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads (started with start_new_session), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def kill_namespace_processes(ns: str, timeout: float = 10.0) -> None:
    """SIGKILL, by PID, every process left in namespace ``ns`` (FLARE's job processes run in
    sessions of their own), and wait until none is left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(p) for p in ip("netns", "pids", ns, check=False).stdout.split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def preconditions() -> str | None:
    """Why this machine cannot make network namespaces, or None."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "making network namespaces needs root (CI runs as root)"
    missing = [tool for tool in ("ip", "ss") if shutil.which(tool) is None]
    if missing:
        return f"iproute2 tools missing: {missing}"
    return None


@dataclass
class Consortium:
    net: Network
    workspace: Path
    kits: Path
    project: object
    logs: dict[str, Path]

    @property
    def server(self) -> str:
        return self.project.server["name"]

    def resolved(self) -> dict[str, str]:
        """What the server's name resolves to in each participant's namespace."""
        return {h.name: " ".join(in_ns(h.ns, "getent", "hosts", self.server).stdout.split()[:1]) or "(nothing)"
                for h in self.net.hosts.values()}

    def diagnosis(self, lines: int = 25, job_id: str | None = None) -> str:
        """Name resolution, connections, and the end of every log (with ``job_id``, its job logs too)."""
        logs = list(self.logs.values())
        logs += [p.with_name("console.log") for name, p in self.logs.items()  # why a process ended, before its log.txt
                 if self.net.hosts[name].proc is not None and self.net.hosts[name].proc.poll() is not None]
        if job_id:
            logs += sorted(self.kits.glob(f"*/{job_id}/log.txt"))
        return (f"{self.server!r} resolves to {self.resolved()}; the server sees connections from "
                f"{sorted(server_peers(self.net.hosts[self.server]))}\n" + "\n".join(tail(p, lines) for p in logs))


def start(host: Host, kit: Path, env: dict[str, str]) -> Path:
    """The kit's own start script, once (``sub_start.sh --once`` execs FLARE without the restart
    loop), inside ``host``'s namespace, as the leader of a new process group."""
    log = kit / "console.log"
    with open(log, "ab") as out:
        host.proc = subprocess.Popen(["ip", "netns", "exec", host.ns, "bash", str(kit / "startup" / "sub_start.sh"), "--once"],
                                     cwd=kit, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
    return kit / "log.txt"


def server_peers(server: Host) -> set[str]:
    """Addresses with an established connection to the server's FL port, seen in its namespace."""
    listing = in_ns(server.ns, "ss", "-Htn", "state", "established", f"( sport = :{FL_PORT} )")
    return {line.split()[-1].rsplit(":", 1)[0] for line in listing.stdout.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def consortium(project, tmp_path_factory):
    """Production kits (``provision(poc=False)``), the server and the four hospitals started in
    their own namespaces; ready when the server has a connection from every site's address."""
    from consortium.provisioning.provision import provision

    why = preconditions()
    if why:
        pytest.skip(why)
    server = project.server["name"]
    addresses = {server: SERVER_ADDRESS, "admin": ADMIN_ADDRESS}
    addresses |= {site: f"{SUBNET}.{11 + i}" for i, site in enumerate(project.clients)}
    try:
        net = Network.create(addresses)
    except NetnsUnavailable as e:
        pytest.skip(f"cannot make the test's network namespaces here: {e}")
    try:
        workspace = tmp_path_factory.mktemp("multihost")
        kits = provision(project, workspace, poc=False, server_storage=workspace)
        net.resolve(server, SERVER_ADDRESS)
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        logs = {server: start(net.hosts[server], kits / server, env)}
        for site in project.clients:
            logs[site] = start(net.hosts[site], kits / site, env)
        consortium = Consortium(net, workspace, kits, project, logs)
        want = {net.hosts[s].address for s in project.clients}
        deadline = time.monotonic() + START_TIMEOUT_S
        while not want <= server_peers(net.hosts[server]):
            dead = [h.name for h in net.hosts.values() if h.proc is not None and h.proc.poll() is not None]
            if dead:
                pytest.fail(f"{dead} exited while starting; {consortium.diagnosis()}")
            if time.monotonic() > deadline:
                pytest.fail(f"not every site ({sorted(want)}) connected to the server within {START_TIMEOUT_S:.0f} s; "
                            + consortium.diagnosis())
            time.sleep(0.5)
        yield consortium
    finally:
        problems = net.delete()
    assert not problems, f"clean-up left: {problems}"


def test_each_site_reaches_the_server_by_name_from_its_own_address(consortium):
    net, sites = consortium.net, consortium.project.clients

    resolved = consortium.resolved()
    peers = server_peers(net.hosts[consortium.server])
    seen = {}  # the server's log names each TLS peer: "Connection [CN00003 10.201.0.1:8002 <= 10.201.0.11:44596 SSL cleveland]"
    for local, peer, name in CONNECTION.findall(consortium.logs[consortium.server].read_text()):
        seen.setdefault(name, set()).add((local, peer))
    root_addresses = ip("-o", "addr").stdout

    assert resolved == dict.fromkeys(net.hosts, SERVER_ADDRESS), resolved
    assert peers >= {net.hosts[s].address for s in sites}, f"the server sees connections from {sorted(peers)}"
    assert {s: seen.get(s) for s in sites} == {s: {(SERVER_ADDRESS, net.hosts[s].address)} for s in sites}, seen
    assert f" {SUBNET}." not in root_addresses, f"the test's private network reached the root namespace:\n{root_addresses}"


def test_the_doctor_passes_every_check_of_a_site_and_the_admin_kit_on_their_hosts(consortium):
    doctor, admin = Path(sys.executable).with_name("consortium"), consortium.project.project_admin
    for name in (consortium.project.clients[0], admin):
        host = consortium.net.hosts["admin" if name == admin else name]

        run = in_ns(host.ns, str(doctor), "kit", "doctor", str(consortium.kits / name), timeout=60)

        checks = [line.split(":", 1)[0] for line in run.stdout.splitlines()]
        assert run.returncode == 0, f"doctor for {name} in {host.ns}:\n{run.stdout}{run.stderr}"
        assert {"ok   server reachable", "ok   server accepts the kit"} <= set(checks), run.stdout


def test_a_heart_fedavg_job_runs_end_to_end_across_namespaces(consortium, tmp_path):
    from consortium.reports.job_report import load_results

    job = Path(shutil.copytree(JOBS / "heart_fedavg", tmp_path / "heart_fedavg"))  # the API signs what it submits
    config_file = job / "app" / "config" / "config_fed_server.json"
    config = json.loads(config_file.read_text())
    next(w for w in config["workflows"] if w["id"] == "scatter_and_gather")["args"]["num_rounds"] = ROUNDS
    config_file.write_text(json.dumps(config))
    results = tmp_path / "results"
    results.mkdir()
    admin, sites = consortium.project.project_admin, consortium.project.clients
    cmd = ["ip", "netns", "exec", consortium.net.hosts["admin"].ns, sys.executable, __file__, "admin", admin,
           str(consortium.kits / admin), str(job), str(results), ",".join(sites), str(JOB_TIMEOUT_S)]

    run = subprocess.run(cmd, capture_output=True, text=True, timeout=JOB_TIMEOUT_S + 60)

    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1]) if lines else {}
    context = (f"admin client in its namespace: exit {run.returncode}, {report}\nits stderr: {run.stderr[-3000:]}\n"
               + consortium.diagnosis(job_id=report.get("job_id")))
    assert run.returncode == 0 and report.get("status") == "FINISHED:COMPLETED", context
    assert report["sites"] == sorted(sites), context
    assert (consortium.workspace / "jobs-storage" / report["job_id"]).is_dir(), "the job is not in the test's job storage"
    outcome = load_results(report["result"])  # the server's round records and cross-site evaluation
    rounds = outcome.rounds[["round", "contributors", "rejected"]]
    assert list(rounds["round"]) == list(range(ROUNDS)), rounds
    assert all(c == sorted(sites) for c in rounds["contributors"]), rounds
    assert all(r == {} for r in rounds["rejected"]), rounds
    assert sorted(outcome.scores.index) == sorted(sites), outcome.scores
