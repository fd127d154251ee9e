#!/usr/bin/env python3
"""Runs the binary deploy/Dockerfile builds the way the Kubernetes manifests run it.

    smoke.py BINARY RENDERED_DIR BUF

BINARY is target/release/participants-facade, built by scripts/check-deploy with the
Dockerfile's own `cargo build` line; it is stripped here as the Dockerfile strips it.
RENDERED_DIR holds the rendered kustomizations; BUF is the buf CLI (its `curl` speaks gRPC
through server reflection, as a kubelet's gRPC probe speaks the health protocol).

1. Every variable the manifests and compose.yaml set is one `--help` documents.
2. Every facade ConfigMap is accepted by the program (a bad value exits with code 2).
3. The local-backend StatefulSet, as closely as a machine without containers allows: its
   ConfigMap's environment and nothing else, the image's uid 65532 (when run as root), a
   working directory it cannot write to, a data directory of its own; then the probes'
   own health services, one CreateParticipant, SIGTERM, readiness NOT_SERVING during the
   drain delay, exit 0 within terminationGracePeriodSeconds, and no file written outside
   the data directory.

Only loopback addresses are used: the listen address is overridden to 127.0.0.1 and the
Twilio upstream to a closed loopback port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from deploy_policy import API_SERVICE, BINARY, Report, check_env_keys, pod_spec, seconds  # noqa: E402

IMAGE_UID = 65532
PATH_ENV = "/usr/local/bin:/usr/bin:/bin"
DUMMY_CREDENTIALS = {
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_API_KEY": "SK" + "0" * 32,
    "TWILIO_API_SECRET": "smoke-test-not-a-secret",
}
# A loopback port nothing listens on (discard): the twilio backend reaches no one.
CLOSED_UPSTREAM = "http://127.0.0.1:9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Facade:
    """One running participants-facade process."""

    def __init__(self, binary: Path, env: dict, workdir: Path, log: Path, as_image_user: bool) -> None:
        prefix = []
        if as_image_user:
            prefix = ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups", "--"]
        self.log = log
        self.port = int(env["PARTICIPANTS_LISTEN"].rsplit(":", 1)[1])
        self.proc = subprocess.Popen(prefix + [str(binary)], env=env, cwd=workdir,
                                     stdin=subprocess.DEVNULL, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if listening(self.port):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join("        | " + line for line in text)


def grpc_call(buf: str, port: int, method: str, body: dict) -> tuple[dict | None, str]:
    """Calls a method with buf curl (schema from reflection); returns (response, error)."""
    try:
        done = subprocess.run(
            [buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--timeout", "3s",
             "--data", json.dumps(body), f"http://127.0.0.1:{port}/{method}"],
            capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None, "buf curl timed out"
    if done.returncode != 0:
        return None, (done.stderr or done.stdout).strip()
    return json.loads(done.stdout or "{}"), ""


def health(buf: str, port: int, service: str) -> str:
    response, error = grpc_call(buf, port, "grpc.health.v1.Health/Check", {"service": service})
    return response.get("status", "?") if response is not None else f"error: {error}"


def loopback_only(env: dict) -> dict:
    """Points every address the configuration may make the program bind or dial at loopback."""
    out = dict(env)
    if "PARTICIPANTS_METRICS_LISTEN" in out:
        out["PARTICIPANTS_METRICS_LISTEN"] = f"127.0.0.1:{free_port()}"
    for key in list(out):
        if key.startswith("OTEL_EXPORTER_OTLP") and key.endswith("ENDPOINT"):
            out[key] = CLOSED_UPSTREAM
    return out


def facade_containers(rendered: Path):
    """(overlay, workload, pod spec, container, ConfigMap data, is sidecar) for every facade."""
    for file in sorted(rendered.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(file.read_text()) if d]
        configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
        for doc in docs:
            pod = pod_spec(doc)
            if pod is None:
                continue
            for sidecar, group in ((True, pod.get("initContainers") or []), (False, pod["containers"])):
                for c in group:
                    if BINARY in c.get("image", ""):
                        data = {}
                        for source in c.get("envFrom") or []:
                            if "configMapRef" in source:
                                data.update(configmaps.get(source["configMapRef"]["name"], {}))
                        data.update({v["name"]: v["value"] for v in c.get("env") or [] if "value" in v})
                        yield file.stem, doc, pod, c, data, sidecar


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    built, rendered, buf = Path(argv[1]), Path(argv[2]), argv[3]
    report = Report()
    as_root = os.geteuid() == 0 and shutil.which("setpriv") is not None
    tmp = Path(tempfile.mkdtemp(prefix="check-deploy-smoke."))
    tmp.chmod(0o755)
    try:
        binary = tmp / BINARY
        if shutil.which("strip"):
            subprocess.run(["strip", "--strip-all", "-o", str(binary), str(built)], check=True)
            print(f"{built}: stripped as the Dockerfile does ({built.stat().st_size // 1024} KiB -> {binary.stat().st_size // 1024} KiB)")
        else:
            shutil.copy2(built, binary)
            print(f"{built}: `strip` not found, running it unstripped")
        binary.chmod(0o755)

        help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True,
                                   env={"PATH": PATH_ENV}, check=True).stdout
        check_env_keys(report, help_text, rendered)

        # 2. Every facade configuration parses.
        facades = list(facade_containers(rendered))
        for overlay, doc, pod, container, data, sidecar in facades:
            where = f"{overlay} {doc['kind']}/{doc['metadata']['name']} {container['name']}"
            env = loopback_only({"PATH": PATH_ENV, **data, **DUMMY_CREDENTIALS,
                                 "PARTICIPANTS_LISTEN": f"127.0.0.1:{free_port()}",
                                 "PARTICIPANTS_UPSTREAM_URL": CLOSED_UPSTREAM,
                                 "PARTICIPANTS_DATA_DIR": str(tmp / f"accept-{overlay}")})
            run = Facade(binary, env, tmp, tmp / f"accept-{overlay}.log", as_image_user=False)
            try:
                up = run.wait_listening(10)
                code = run.proc.poll()
                outcome = ("it served" if up else "still starting" if code is None else f"exit code {code}"
                           if code == 2 else f"exited {code}, not for its configuration")
                report.check(code != 2, f"{where}: the program accepts its configuration ({outcome})",
                             "exit code 2 = a flag or variable was rejected:\n" + run.tail(3))
            finally:
                run.stop()

        # 3. The local backend, run as its StatefulSet runs it.
        local = [f for f in facades if f[4].get("PARTICIPANTS_BACKEND") == "local" and f[1]["kind"] == "StatefulSet"]
        if not report.check(len(local) == 1, "one local-backend StatefulSet to run"):
            return report.finish("smoke test")
        overlay, doc, pod, container, data, _ = local[0]
        where = f"{overlay} {doc['kind']}/{doc['metadata']['name']}"
        data_dir = tmp / "data"
        data_dir.mkdir(mode=0o750)
        workdir = tmp / "readonly-cwd"
        workdir.mkdir(mode=0o555)
        if as_root:
            os.chown(data_dir, IMAGE_UID, IMAGE_UID)
        port = free_port()
        env = loopback_only({"PATH": PATH_ENV, **data, "PARTICIPANTS_LISTEN": f"127.0.0.1:{port}",
                             "PARTICIPANTS_DATA_DIR": str(data_dir)})
        probes = {k: (container.get(f"{k}Probe") or {}).get("grpc") or {} for k in ("startup", "liveness", "readiness")}
        startup = container.get("startupProbe") or {}
        start_budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        drain = seconds(data.get("PARTICIPANTS_DRAIN_DELAY", "0s"))
        termination = pod.get("terminationGracePeriodSeconds", 30)
        print(f"{where}: running as {'uid ' + str(IMAGE_UID) if as_root else 'the current user (not root: no uid switch)'}, "
              f"cwd not writable, data in {data_dir}, port {port}")
        marker = tmp / "marker"
        marker.touch()
        time.sleep(0.01)
        started = time.monotonic()
        run = Facade(binary, env, workdir, tmp / "local.log", as_image_user=as_root)
        try:
            status = ""
            while time.monotonic() - started < start_budget and run.proc.poll() is None:
                status = health(buf, port, probes["startup"].get("service", ""))
                if status == "SERVING":
                    break
                time.sleep(0.2)
            if not report.check(status == "SERVING", f"{where}: startupProbe passes within {start_budget}s "
                                f"({time.monotonic() - started:.1f}s)", f"last answer {status!r}\n{run.tail()}"):
                return report.finish("smoke test")
            for kind in ("liveness", "readiness"):
                service = probes[kind].get("service", "")
                report.check(health(buf, port, service) == "SERVING", f"{where}: {kind}Probe service {service or chr(34) * 2} is SERVING")
            created, error = grpc_call(buf, port, "participants.v1.ParticipantService/CreateParticipant", {
                "conversation_id": "conv_check_deploy", "name": "Smoke", "type": "PARTICIPANT_TYPE_CUSTOMER",
                "addresses": [{"channel": "CHANNEL_SMS", "address": "+18005550100"}]})
            report.check(bool(created) and str(created.get("id", "")).startswith("conv_participant_"),
                         f"{where}: CreateParticipant is committed to the data directory as the image's user",
                         error or str(created))

            # SIGTERM, as the kubelet sends it.
            terminated = time.monotonic()
            run.proc.send_signal(signal.SIGTERM)
            draining = "NOT_SERVING" if drain < 1 else ""
            while draining != "NOT_SERVING" and time.monotonic() - terminated < drain - 0.5:
                draining = health(buf, port, probes["readiness"].get("service", API_SERVICE))
            report.check(draining == "NOT_SERVING",
                         f"{where}: readiness is NOT_SERVING during the {drain:g}s drain delay (endpoints drop it)",
                         f"answered {draining!r}")
            try:
                code = run.proc.wait(timeout=termination)
            except subprocess.TimeoutExpired:
                code = None
            took = time.monotonic() - terminated
            report.check(code == 0 and took < termination,
                         f"{where}: exits 0 {took:.1f}s after SIGTERM, within terminationGracePeriodSeconds {termination}",
                         f"exit code {code}\n{run.tail()}")
            report.check(took >= drain - 0.5, f"{where}: kept serving through the drain delay ({drain:g}s)")
        finally:
            run.stop()

        report.check((data_dir / "participants.db").exists(), f"{where}: the store lives in PARTICIPANTS_DATA_DIR")
        if as_root:
            written = subprocess.run(
                ["find", "/tmp", "/var/tmp", "/dev/shm", "-xdev", "-user", str(IMAGE_UID), "-newer", str(marker),
                 "-not", "-path", f"{data_dir}*"], capture_output=True, text=True).stdout.split()
            report.check(not written, f"{where}: wrote nothing outside the data directory (read-only root holds)",
                         f"written: {written[:5]}")
        return report.finish("smoke test")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
