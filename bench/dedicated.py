"""A second dockerd for the benchmark: its own builder, so the bench can prune it freely.

The shared engine's builder holds other people's cache: ``docker buildx prune -af`` there
would wreck their builds. A ``docker-container`` builder needs the moby/buildkit image,
which an offline machine does not have. A second dockerd does not: it shares the running
containerd (its own containerd namespace), the registry and the registry mirror, and starts
in under a second. Its builder starts empty, like a fresh CI runner's.

    with Engine.start() as engine:
        env = engine.env()            # DOCKER_HOST for every docker/buildx/bake-ci process
        engine.forget()               # prune its builder, remove its images (bases kept)

Needs root (a bridge of its own) and ``dockerd`` on PATH; :func:`problem` says what is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

CONTAINERD_SOCKET = Path("/run/containerd/containerd.sock")
DAEMON_JSON = Path("/etc/docker/daemon.json")
#: Images a forget() keeps: the base images, as a fresh runner would pull them anyway (cheaply, locally).
KEEP_PREFIXES = ("localhost:5000/library/",)


class EngineError(Exception):
    """The second engine could not be started, asked or stopped."""


def problem() -> str | None:
    """None when a second engine can be started here; else why not."""
    if os.geteuid() != 0:
        return "a second dockerd needs root"
    for tool in ("dockerd", "ip", "ctr", "iptables"):
        if shutil.which(tool) is None:
            return f"no {tool} on PATH"
    if not CONTAINERD_SOCKET.exists():
        return f"no containerd socket at {CONTAINERD_SOCKET}"
    return None


def _run(args: list[str], env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, env=None if env is None else dict(env))
    if proc.returncode != 0:
        raise EngineError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


@dataclass
class Engine:
    root: Path
    name: str
    process: subprocess.Popen[bytes]
    subnet: int

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def namespace(self) -> str:
        return self.name

    @property
    def bridge(self) -> str:
        return f"br-{self.name[-8:]}"

    @property
    def rules(self) -> list[list[str]]:
        """NAT and forwarding for this engine's bridge only (pip in RUN steps needs the network);
        dockerd's own iptables management is off, so it cannot clash with the shared engine's."""
        subnet = f"172.31.{self.subnet}.0/24"
        return [
            ["-t", "nat", "POSTROUTING", "-s", subnet, "!", "-o", self.bridge, "-j", "MASQUERADE"],
            ["-t", "filter", "FORWARD", "-i", self.bridge, "-j", "ACCEPT"],
            ["-t", "filter", "FORWARD", "-o", self.bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
             "-j", "ACCEPT"],
        ]  # fmt: skip

    def firewall(self, add: bool) -> None:
        for rule in self.rules:
            table, chain, spec = rule[:2], rule[2], rule[3:]
            subprocess.run(["iptables", *table, "-I" if add else "-D", chain, *spec], capture_output=True, check=add)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["DOCKER_HOST"] = f"unix://{self.socket}"
        return env

    @classmethod
    def start(cls, timeout: float = 60.0) -> Engine:
        why = problem()
        if why:
            raise EngineError(why)
        name = f"bench{uuid.uuid4().hex[:8]}"
        root = Path(tempfile.mkdtemp(prefix="bake-ci-bench-engine-"))
        config = {"features": {"containerd-snapshotter": True}}
        if DAEMON_JSON.is_file():  # the same registry mirrors as the shared engine
            mirrors = json.loads(DAEMON_JSON.read_text()).get("registry-mirrors")
            if mirrors:
                config["registry-mirrors"] = mirrors
        (root / "daemon.json").write_text(json.dumps(config))
        subnet = 200 + int(name[-2:], 16) % 50
        bridge = f"br-{name[-8:]}"
        _run(["ip", "link", "add", "name", bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"172.31.{subnet}.1/24", "dev", bridge])
        _run(["ip", "link", "set", bridge, "up"])
        log = (root / "dockerd.log").open("wb")
        flags = {
            "--config-file": root / "daemon.json",
            "--data-root": root / "data",
            "--exec-root": root / "exec",
            "-H": f"unix://{root / 'docker.sock'}",
            "--pidfile": root / "docker.pid",
            "--containerd": CONTAINERD_SOCKET,
            "--containerd-namespace": name,
            "--containerd-plugins-namespace": f"plugins.{name}",
            "--bridge": bridge,
            "--iptables": "false",  # the shared engine's rules stay its own; see firewall()
        }
        command = ["dockerd", *(f"{flag}={value}" for flag, value in flags.items())]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        engine = cls(root, name, process, subnet)
        try:
            engine.firewall(add=True)
        except subprocess.CalledProcessError as exc:
            engine.stop()
            raise EngineError(f"iptables: {exc.stderr!r}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                engine.stop()
                raise EngineError(f"the second dockerd exited ({process.returncode}); see {root / 'dockerd.log'}")
            probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], env=engine.env(),
                                   capture_output=True)  # fmt: skip
            if probe.returncode == 0:
                return engine
            time.sleep(0.2)  # polling for the daemon's socket
        engine.stop()
        raise EngineError(f"the second dockerd did not answer within {timeout:g} s")

    def images(self) -> list[str]:
        return _run(["ctr", "--namespace", self.namespace, "images", "ls", "--quiet"]).split()

    def remove_images(self, keep: tuple[str, ...] = KEEP_PREFIXES) -> None:
        ours = [ref for ref in self.images() if not ref.startswith(keep)]
        if ours:
            _run(["ctr", "--namespace", self.namespace, "images", "rm", "--sync", *ours])

    def forget(self) -> None:
        """What a fresh runner would not have: this engine's build cache and its images (bases kept)."""
        _run(["docker", "buildx", "prune", "-af"], env=self.env())
        self.remove_images()

    def stop(self) -> None:
        """Empty the engine, stop it, remove its bridge and files (safe to call twice)."""
        if self.process.poll() is None:
            try:
                self.forget()
                self.remove_images(keep=())
            except EngineError:
                pass
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.firewall(add=False)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        subprocess.run(["umount", "-R", str(self.root / "exec")], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
