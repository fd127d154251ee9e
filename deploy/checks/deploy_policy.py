#!/usr/bin/env python3
"""The checks of deploy/ that no generic validator can make, run by scripts/check-deploy.

hadolint, kubernetes-validate and the compose-spec schema say whether each file is
well-formed. This says whether the files agree with each other and with the program:

  dockerfile     deploy/Dockerfile builds what CI builds (toolchain, command, binary path),
                 runs it as the non-root user with the data directory as a volume, and its
                 build context (deploy/Dockerfile.dockerignore) holds what the build needs.
  manifests DIR  the rendered Kubernetes manifests in DIR (one file per kustomization):
                 hardening, gRPC probes on the right port and health service, drain times
                 against terminationGracePeriodSeconds, credentials and the database URL
                 only from Secrets, one writer for the embedded store, no data volume for
                 the shared (PostgreSQL) one, selectors that select something.
  compose        deploy/compose.yaml and the collector configuration it mounts.
  env-keys HELP DIR
                 every PARTICIPANTS_* variable the manifests and compose.yaml set is one the
                 binary documents in HELP (its --help output).

Prints one line per check and exits 1 if any failed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose.yaml"

BINARY = "participants-facade"
# The build CI runs; the Dockerfile must build with exactly this, and check-deploy runs it.
BUILD_COMMAND = f"cargo build --release --locked --bin {BINARY}"
BINARY_PATH = f"target/release/{BINARY}"
API_SERVICE = "participants.v1.ParticipantService"
# The program's defaults (README, src/config.rs) for what the checks reason about.
DEFAULTS = {
    "PARTICIPANTS_LISTEN": "0.0.0.0:50051",
    "PARTICIPANTS_BACKEND": "local",
    "PARTICIPANTS_DATA_DIR": "./data",
    "PARTICIPANTS_DRAIN_DELAY": "0s",
    "PARTICIPANTS_SHUTDOWN_GRACE": "30s",
    "PARTICIPANTS_REQUEST_TIMEOUT": "30s",
}
CREDENTIALS = ("TWILIO_AUTH_TOKEN", "TWILIO_API_KEY", "TWILIO_API_SECRET")
# The shared store's PostgreSQL URL: it holds a password, so it is a secret like them.
DATABASE_URL = "PARTICIPANTS_DATABASE_URL"
SECRET_ENV = CREDENTIALS + (DATABASE_URL,)
# Variables the program reads that are not its own flags.
FOREIGN_ENV = re.compile(r"^(TWILIO_ACCOUNT_SID|TWILIO_AUTH_TOKEN|TWILIO_API_KEY|TWILIO_API_SECRET|RUST_LOG|OTEL_[A-Z0-9_]+)$")
DEBIAN_RELEASES = {"bookworm": "12", "trixie": "13"}


class Report:
    """Counts checks; prints `ok` or `FAIL` with the reason for each."""

    def __init__(self) -> None:
        self.failed = 0
        self.passed = 0

    def check(self, ok: bool, what: str, why: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failed += 1
            print(f"  FAIL  {what}" + (f"\n        {why}" if why else ""))
        return ok

    def finish(self, name: str) -> int:
        print(f"{name}: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


def seconds(duration: str) -> float:
    """Parses the humantime durations the program accepts (`5s`, `500ms`, `1m 30s`, `24h`)."""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "secs": 1, "m": 60,
             "min": 60, "mins": 60, "h": 3600, "hr": 3600, "hrs": 3600, "d": 86400}
    total, rest = 0.0, duration.strip()
    if not rest:
        raise ValueError("empty duration")
    for number, unit in re.findall(r"(\d+)\s*([a-z]+)\s*", rest):
        if unit not in units:
            raise ValueError(f"unknown unit {unit!r} in {duration!r}")
        total += int(number) * units[unit]
    if re.sub(r"(\d+)\s*([a-z]+)\s*", "", rest):
        raise ValueError(f"not a duration: {duration!r}")
    return total


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_stages(text: str) -> tuple[list[tuple[str, str]], list[dict]]:
    """Splits a Dockerfile into global instructions and stages of (KEYWORD, arguments)."""
    instructions, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = " ".join((pending + line).split())
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args))
    preamble, stages = [], []
    for keyword, args in instructions:
        if keyword == "FROM":
            parts = args.split()
            flags = [p for p in parts if p.startswith("--")]
            rest = [p for p in parts if not p.startswith("--")]
            name = rest[2] if len(rest) >= 3 and rest[1].upper() == "AS" else str(len(stages))
            stages.append({"base": rest[0], "name": name, "flags": flags, "body": []})
        elif stages:
            stages[-1]["body"].append((keyword, args))
        else:
            preamble.append((keyword, args))
    return preamble, stages


def arg_defaults(instructions: list[tuple[str, str]]) -> dict[str, str]:
    out = {}
    for keyword, args in instructions:
        if keyword == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            out[name.strip()] = value.strip().strip('"')
    return out


def env_pairs(args: str) -> dict[str, str]:
    """ENV a=b c="d e" (the key=value form; the Dockerfile uses no other)."""
    return {k: v.strip('"') for k, v in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)', args)}


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether BuildKit leaves `path` out of the context (last matching pattern wins; a
    pattern that matches a directory leaves out everything below it)."""

    def regex(pattern: str) -> re.Pattern:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                out, i = out + ".*", i + 2
                if pattern.startswith("/", i):
                    out, i = out + "/?", i + 1
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + "$")

    prefixes = ["/".join(path.split("/")[: n + 1]) for n in range(path.count("/") + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.strip("/")
        if body and any(regex(body).match(p) for p in prefixes):
            excluded = not negate
    return excluded


def check_dockerfile(report: Report) -> None:
    text = DOCKERFILE.read_text()
    preamble, stages = dockerfile_stages(text)
    args = arg_defaults(preamble)
    by_name = {s["name"]: s for s in stages}
    print(f"{DOCKERFILE.relative_to(ROOT)}: {len(stages)} stages ({', '.join(s['name'] for s in stages)})")

    # The toolchain: the one CI builds and tests with, and no older than Cargo.toml allows.
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True, check=True).stdout
    ci_rust = rustc.split()[1]
    image_rust = args.get("RUST_VERSION", "")
    report.check(image_rust == ci_rust, f"RUST_VERSION {image_rust} is the toolchain CI uses ({ci_rust})",
                 "change ARG RUST_VERSION in deploy/Dockerfile to the rustc CI runs")
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    msrv = manifest["package"].get("rust-version", "0")

    def version(v: str) -> tuple:
        return tuple(int(x) for x in re.findall(r"\d+", v)[:3])

    report.check(bool(image_rust) and version(image_rust) >= version(msrv),
                 f"RUST_VERSION {image_rust} >= Cargo.toml rust-version {msrv}")
    for name in ("rust-toolchain", "rust-toolchain.toml"):
        pinned = ROOT / name
        if pinned.exists():
            channel = re.search(r'channel\s*=\s*"([^"]+)"', pinned.read_text())
            value = channel.group(1) if channel else pinned.read_text().strip()
            report.check(value == image_rust, f"{name} pins {value}, the same as RUST_VERSION")

    builders = [s for s in stages if s["base"].startswith("rust:")]
    report.check(len(builders) == 1 and builders[0]["base"].startswith("rust:${RUST_VERSION}-"),
                 "one builder base image, rust:${RUST_VERSION}-<debian release>",
                 f"found {[s['base'] for s in builders]}")

    # The build command: exactly CI's, once, with nothing that changes code generation.
    runs = [(s, a) for s in stages for k, a in s["body"] if k == "RUN"]
    builds = [(s, a) for s, a in runs if re.search(r"\bcargo\s+build\b", a)]
    report.check(len(builds) == 1, "exactly one `cargo build` in the Dockerfile", f"found {len(builds)}")
    build_stage = builds[0][0] if builds else None
    report.check(bool(builds) and builds[0][1] == BUILD_COMMAND,
                 f"the build runs `{BUILD_COMMAND}` verbatim",
                 f"found `{builds[0][1] if builds else ''}`; CI builds and tests exactly that command")
    cooks = [a for _, a in runs if "cargo chef cook" in a]
    report.check(len(cooks) == 1 and "--release" in cooks[0] and "--locked" in cooks[0],
                 "the dependency layer (cargo chef cook) uses the same --release --locked")
    codegen = re.compile(r"^(RUSTFLAGS|CARGO_ENCODED_RUSTFLAGS|RUSTC_WRAPPER|CARGO_BUILD_\w+|CARGO_PROFILE_\w+|CARGO_TARGET_\w+)$")
    overrides = [f"{s['name']}: {k} {a}" for s in stages for k, a in s["body"]
                 if k in ("ENV", "ARG") and any(codegen.match(n) for n in (env_pairs(a) or {a.split("=")[0]: ""}))]
    report.check(not overrides, "no RUSTFLAGS / CARGO_PROFILE_* / CARGO_BUILD_* / CARGO_TARGET_* set in the image",
                 "; ".join(overrides))
    after_build = build_stage["body"] if build_stage else []
    report.check(any(k == "RUN" and BINARY_PATH in a for k, a in after_build),
                 f"the build stage takes the binary from {BINARY_PATH}, where CI's build puts it")

    # The runtime stage: distroless on the builder's Debian release, non-root, data volume.
    runtime = stages[-1]
    codename = re.search(r"-(bookworm|trixie)$", builders[0]["base"]) if builders else None
    release = DEBIAN_RELEASES.get(codename.group(1), "?") if codename else "?"
    report.check(runtime["base"].startswith(f"gcr.io/distroless/cc-debian{release}"),
                 f"runtime image is distroless cc on Debian {release}, like the builder (same glibc)",
                 f"runtime is {runtime['base']}")
    copies = [a for k, a in runtime["body"] if k == "COPY"]
    binary_copy = [a for a in copies if a.startswith(f"--from={build_stage['name'] if build_stage else '?'} ")
                   and a.endswith(f"/usr/local/bin/{BINARY}")]
    report.check(len(binary_copy) == 1, f"runtime copies the binary from stage `{build_stage['name'] if build_stage else '?'}`")
    entry = [a for k, a in runtime["body"] if k == "ENTRYPOINT"]
    report.check(entry == [f'["/usr/local/bin/{BINARY}"]'], "ENTRYPOINT runs the binary in exec form (it gets SIGTERM itself)",
                 f"found {entry}")
    users = [a for k, a in runtime["body"] if k == "USER"]
    uid = users[-1].split(":")[0] if users else ""
    report.check(uid.isdigit() and uid != "0", f"runs as numeric non-root user {users[-1] if users else '(none)'}",
                 "runAsNonRoot can only verify a numeric USER")
    env = {}
    for k, a in runtime["body"]:
        if k == "ENV":
            env.update(env_pairs(a))
    data_dir = env.get("PARTICIPANTS_DATA_DIR", "")
    volumes = " ".join(a for k, a in runtime["body"] if k == "VOLUME")
    report.check(bool(data_dir) and f'"{data_dir}"' in volumes,
                 f"PARTICIPANTS_DATA_DIR={data_dir} is a VOLUME (writable with a read-only root)")
    report.check(any(f"--chown={uid}:" in a and a.split()[-1] == data_dir for a in copies),
                 f"the data directory is owned by uid {uid} in the image")
    exposed = " ".join(a for k, a in runtime["body"] if k == "EXPOSE").split()
    default_port = DEFAULTS["PARTICIPANTS_LISTEN"].rsplit(":", 1)[1]
    report.check(default_port in exposed, f"EXPOSE {default_port}, the default listen port")

    # The build context.
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    needed = [f for f in files if f in ("Cargo.toml", "Cargo.lock", "build.rs")
              or f.split("/")[0] in ("src", "proto", "benches")]
    dropped = [f for f in needed if dockerignore_excludes(patterns, f)]
    report.check(bool(needed) and not dropped,
                 f"the build context keeps the {len(needed)} files cargo needs (Cargo.*, build.rs, src/, proto/, benches/)",
                 f"left out: {dropped[:5]}")
    for path in ("target/release/participants-facade", ".git/HEAD", "data/participants.db", "tools/node_modules/x", ".tools/venv"):
        report.check(dockerignore_excludes(patterns, path), f"the build context leaves out {path.rsplit('/', 1)[0]}/")


# --------------------------------------------------------------------------- manifests


def pod_spec(doc: dict) -> dict | None:
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return spec.get("template", {}).get("spec")
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    return None


def pod_labels(doc: dict) -> dict:
    if doc.get("kind") == "Pod":
        return doc.get("metadata", {}).get("labels", {})
    return doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})


def selects(selector: dict, labels: dict) -> bool:
    """matchLabels (or a plain Service selector) against a Pod's labels."""
    wanted = selector.get("matchLabels", selector) if "matchLabels" in selector or "matchExpressions" not in selector else {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def expected_image() -> str:
    component = yaml.safe_load((KUBERNETES / "components/image/kustomization.yaml").read_text())
    entry = next(i for i in component["images"] if i["name"] == BINARY)
    name = entry.get("newName", BINARY)
    return f"{name}@{entry['digest']}" if entry.get("digest") else f"{name}:{entry['newTag']}"


def check_container_hardening(report: Report, where: str, pod: dict, container: dict) -> None:
    pod_sc = pod.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    name = f"{where} container {container['name']}"
    report.check(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{name}: runAsNonRoot")
    report.check(sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem")
    report.check(sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation false")
    caps = sc.get("capabilities") or {}
    report.check("ALL" in (caps.get("drop") or []) and not caps.get("add"), f"{name}: all capabilities dropped, none added")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    report.check(seccomp == "RuntimeDefault", f"{name}: seccomp RuntimeDefault", f"found {seccomp}")
    res = container.get("resources") or {}
    report.check(all(k in (res.get("requests") or {}) for k in ("cpu", "memory")) and "memory" in (res.get("limits") or {}),
                 f"{name}: cpu and memory requests, memory limit")


def check_facade(report: Report, where: str, doc: dict, pod: dict, container: dict, sidecar: bool,
                 configmaps: dict, secrets_in_examples: dict, dockerfile_uid: str) -> None:
    name = f"{where} {container['name']}"
    report.check(container.get("image") == expected_image(), f"{name}: image {expected_image()} (components/image)",
                 f"found {container.get('image')}")
    if sidecar:
        report.check(container.get("restartPolicy") == "Always",
                     f"{name}: native sidecar (init container with restartPolicy: Always)")

    # Effective environment: program defaults, then ConfigMaps, then literal env.
    env = dict(DEFAULTS)
    secret_refs = []
    # (variable, Secret, key) for every variable taken from a Secret by secretKeyRef.
    secret_keys = []
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            if report.check(ref in configmaps, f"{name}: ConfigMap {ref} is part of the same kustomization"):
                env.update(configmaps[ref])
        if "secretRef" in source:
            secret_refs.append(source["secretRef"]["name"])
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in (var.get("valueFrom") or {}):
            ref = var["valueFrom"]["secretKeyRef"]
            secret_refs.append(ref["name"])
            secret_keys.append((var["name"], ref["name"], ref["key"]))
    try:
        drain = seconds(env["PARTICIPANTS_DRAIN_DELAY"])
        grace = seconds(env["PARTICIPANTS_SHUTDOWN_GRACE"])
        timeout = seconds(env["PARTICIPANTS_REQUEST_TIMEOUT"])
    except ValueError as e:
        report.check(False, f"{name}: durations parse", str(e))
        return

    termination = pod.get("terminationGracePeriodSeconds", 30)
    report.check(termination > drain + grace,
                 f"{name}: terminationGracePeriodSeconds {termination} > drain delay {drain:g}s + shutdown grace {grace:g}s",
                 "the kubelet would SIGKILL the facade before its drain ends")
    report.check(timeout <= grace, f"{name}: request timeout {timeout:g}s <= shutdown grace {grace:g}s",
                 "a call started just before the drain could be cut off")

    host, _, port = env["PARTICIPANTS_LISTEN"].rpartition(":")
    report.check(host in ("0.0.0.0", "[::]"), f"{name}: listens on all interfaces ({env['PARTICIPANTS_LISTEN']})",
                 "the kubelet's gRPC probes dial the Pod IP, not loopback")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
    report.check(int(port) in ports.values(), f"{name}: containerPort {port} is the listen port", f"ports {ports}")
    probes = {kind: container.get(f"{kind}Probe") or {} for kind in ("startup", "liveness", "readiness")}
    for kind, probe in probes.items():
        grpc = probe.get("grpc")
        if not report.check(grpc is not None and int(grpc.get("port", -1)) == int(port),
                            f"{name}: {kind}Probe is a gRPC probe on port {port}", f"found {probe}"):
            continue
        service = grpc.get("service", "")
        if kind == "readiness" and not sidecar:
            report.check(service == API_SERVICE, f"{name}: readiness asks for {API_SERVICE} (drain, circuit breaker)",
                         f"found {service!r}")
        elif kind == "readiness":
            report.check(service in ("", API_SERVICE), f"{name}: sidecar readiness asks for {service or chr(34) * 2}")
        else:
            report.check(service == "", f"{name}: {kind} asks for service \"\" (the process is alive)",
                         f"found {service!r}")

    uid = str((container.get("securityContext") or {}).get("runAsUser", (pod.get("securityContext") or {}).get("runAsUser", dockerfile_uid)))
    report.check(uid == dockerfile_uid, f"{name}: runs as uid {uid}, the image's user", f"image user is {dockerfile_uid}")

    configured = {k for cm in (container.get("envFrom") or []) if "configMapRef" in cm
                  for k in configmaps.get(cm["configMapRef"]["name"], {})}
    literal = {v["name"] for v in container.get("env") or [] if "value" in v}
    leaked = sorted((configured | literal) & set(SECRET_ENV))
    report.check(not leaked, f"{name}: no Twilio credential or database URL in a ConfigMap or literal env",
                 f"found {leaked}")
    for ref in sorted(set(secret_refs)):
        report.check(ref in secrets_in_examples, f"{name}: Secret {ref} is documented by a *.example.yaml")
    for variable, ref, key in secret_keys:
        report.check(key in secrets_in_examples.get(ref, set()),
                     f"{name}: {variable} comes from key {key} of Secret {ref}, which its example has")
    shared_store = any(variable == DATABASE_URL for variable, _, _ in secret_keys)
    backend = env["PARTICIPANTS_BACKEND"]
    if backend == "twilio":
        report.check(bool(secret_refs), f"{name}: twilio credentials come from a Secret ({', '.join(secret_refs) or 'none'})")
    elif backend == "local" and shared_store:
        # The shared store: participants in PostgreSQL, so the replicas are interchangeable
        # and nothing of theirs needs keeping.
        mounts = {m["mountPath"] for m in container.get("volumeMounts") or []}
        report.check(not sidecar and doc.get("kind") == "Deployment",
                     f"{name}: local backend on PostgreSQL is a Deployment (stateless replicas)")
        report.check(not doc.get("spec", {}).get("volumeClaimTemplates") and
                     not any("persistentVolumeClaim" in v for v in pod.get("volumes") or []),
                     f"{name}: no persistent volume (the data is in PostgreSQL)")
        report.check(env["PARTICIPANTS_DATA_DIR"] not in mounts,
                     f"{name}: no data directory mounted (PARTICIPANTS_DATA_DIR is unused with a database URL)")
    elif backend == "local":
        data_dir = env["PARTICIPANTS_DATA_DIR"]
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
        report.check(data_dir in mounts, f"{name}: data directory {data_dir} is a mounted volume",
                     "the root filesystem is read-only")
        if not sidecar:
            claims = {c["metadata"]["name"] for c in doc.get("spec", {}).get("volumeClaimTemplates") or []}
            report.check(doc.get("kind") == "StatefulSet" and mounts.get(data_dir) in claims,
                         f"{name}: local backend is a StatefulSet with its data on a volumeClaimTemplate")
            report.check(doc.get("spec", {}).get("replicas") == 1,
                         f"{name}: local backend has exactly 1 replica (one writer per store)",
                         f"replicas: {doc.get('spec', {}).get('replicas')}")
            report.check(str((pod.get("securityContext") or {}).get("fsGroup")) == dockerfile_uid,
                         f"{name}: fsGroup {dockerfile_uid} makes the volume writable for the image's user")


def check_manifests(report: Report, rendered: Path) -> None:
    _, stages = dockerfile_stages(DOCKERFILE.read_text())
    users = [a for k, a in stages[-1]["body"] if k == "USER"]
    dockerfile_uid = users[-1].split(":")[0] if users else "?"
    examples = sorted(KUBERNETES.rglob("*.example.yaml"))
    # Secret name -> its keys, for every Secret a *.example.yaml documents.
    secrets_in_examples = {d["metadata"]["name"]: set(d.get("stringData") or {}) | set(d.get("data") or {})
                           for f in examples for d in yaml.safe_load_all(f.read_text())
                           if d and d.get("kind") == "Secret"}
    for example in examples:
        for doc in yaml.safe_load_all(example.read_text()):
            url = ((doc or {}).get("stringData") or {}).get(DATABASE_URL) if (doc or {}).get("kind") == "Secret" else None
            if url is not None:
                where = f"{example.relative_to(ROOT)} Secret/{doc['metadata']['name']}"
                report.check(re.match(r"^postgres(ql)?://", url) is not None, f"{where}: {DATABASE_URL} is a postgres:// URL")
                report.check("REPLACE" in url.upper(), f"{where}: {DATABASE_URL} holds a placeholder, not a password",
                             "an example must never carry a real password")

    # Every manifest file is rendered by some kustomization, or is an example validated alone.
    referenced: set[Path] = set()
    kustomizations = sorted(KUBERNETES.rglob("kustomization.yaml"))
    for k in kustomizations:
        spec = yaml.safe_load(k.read_text())
        referenced.add(k)
        for entry in (spec.get("resources") or []) + (spec.get("patches") and [p["path"] for p in spec["patches"] if "path" in p] or []):
            referenced.add((k.parent / entry).resolve())
        for gen in (spec.get("configMapGenerator") or []) + (spec.get("secretGenerator") or []):
            for f in (gen.get("envs") or []) + (gen.get("files") or []):
                referenced.add((k.parent / f.split("=")[-1]).resolve())
    stray = [str(f.relative_to(ROOT)) for f in sorted(KUBERNETES.rglob("*"))
             if f.is_file() and f.suffix in (".yaml", ".yml", ".env") and f.resolve() not in referenced
             and not f.name.endswith(".example.yaml") and f.name != "README.md"]
    report.check(not stray, "every manifest under deploy/kubernetes is rendered by a kustomization (or is a *.example.yaml)",
                 f"unreferenced: {stray}")
    overlays = [k.parent for k in kustomizations if yaml.safe_load(k.read_text()).get("kind") == "Kustomization"]
    files = sorted(rendered.glob("*.yaml"))
    report.check(sorted(f.stem for f in files) == sorted(o.name for o in overlays),
                 f"every kustomization was rendered ({', '.join(o.name for o in overlays)})")

    facades = 0
    for file in files:
        docs = [d for d in yaml.safe_load_all(file.read_text()) if d]
        where = file.stem
        print(f"{where}: {', '.join(d['kind'] + '/' + d['metadata']['name'] for d in docs)}")
        configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
        workloads = [d for d in docs if pod_spec(d) is not None]
        for doc in workloads:
            pod = pod_spec(doc)
            label = f"{where} {doc['kind']}/{doc['metadata']['name']}"
            report.check(pod.get("automountServiceAccountToken") is False, f"{label}: no service account token mounted")
            report.check(pod.get("enableServiceLinks") is False, f"{label}: no service link variables")
            for container in (pod.get("initContainers") or []) + pod["containers"]:
                check_container_hardening(report, label, pod, container)
            for container in pod.get("initContainers") or []:
                if BINARY in container.get("image", ""):
                    facades += 1
                    check_facade(report, label, doc, pod, container, True, configmaps, secrets_in_examples, dockerfile_uid)
            for container in pod["containers"]:
                if BINARY in container.get("image", ""):
                    facades += 1
                    check_facade(report, label, doc, pod, container, False, configmaps, secrets_in_examples, dockerfile_uid)
            standalone = any(BINARY in c.get("image", "") for c in pod["containers"])
            if standalone and doc["kind"] == "Deployment":
                replicas = doc["spec"].get("replicas", 1)
                report.check(replicas >= 2, f"{label}: several replicas ({replicas})")
                pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget" and selects(d["spec"]["selector"], pod_labels(doc))]
                report.check(len(pdbs) == 1, f"{label}: a PodDisruptionBudget covers it")
                services = [d for d in docs if d["kind"] == "Service" and selects(d["spec"].get("selector") or {}, pod_labels(doc))]
                report.check(bool(services) and all(s["spec"].get("clusterIP") == "None" for s in services),
                             f"{label}: reached through a headless Service (client-side balancing)")

        for doc in docs:
            kind, name = doc["kind"], doc["metadata"]["name"]
            if kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
                selector = doc["spec"].get("selector") if kind != "NetworkPolicy" else doc["spec"].get("podSelector")
                matched = [w for w in workloads if selects(selector or {}, pod_labels(w))]
                report.check(bool(matched), f"{where} {kind}/{name}: selects the Pods of {', '.join(w['metadata']['name'] for w in matched) or 'nothing'}")
                if kind == "Service" and matched:
                    pod = pod_spec(matched[0])
                    named = {p.get("name") for c in (pod.get("initContainers") or []) + pod["containers"] for p in c.get("ports") or []}
                    numbered = {p["containerPort"] for c in (pod.get("initContainers") or []) + pod["containers"] for p in c.get("ports") or []}
                    for port in doc["spec"]["ports"]:
                        target = port.get("targetPort", port["port"])
                        report.check(target in named or target in numbered, f"{where} Service/{name}: targetPort {target} exists on the Pods")
            if kind == "StatefulSet":
                service = doc["spec"].get("serviceName")
                report.check(any(d["kind"] == "Service" and d["metadata"]["name"] == service and d["spec"].get("clusterIP") == "None" for d in docs),
                             f"{where} StatefulSet/{name}: its governing Service {service} is headless and present")
    report.check(facades >= 4, f"{facades} participants-facade containers checked (shared service, local, postgres, sidecar)")


# --------------------------------------------------------------------------- compose


def check_compose(report: Report) -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose.get("services", {})
    print(f"{COMPOSE.relative_to(ROOT)}: services {', '.join(services)}")
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            report.check(host_ip == "127.0.0.1", f"{name}: port {port} is published on loopback only")
    facade = [(n, s) for n, s in services.items() if (s.get("build") or {}).get("dockerfile") == "deploy/Dockerfile"]
    if not report.check(len(facade) == 1, "one service is built from deploy/Dockerfile"):
        return
    name, svc = facade[0]
    report.check((COMPOSE.parent / svc["build"].get("context", ".")).resolve() == ROOT,
                 f"{name}: build context is the repository root, as the Dockerfile expects")
    report.check(svc.get("read_only") is True, f"{name}: read-only root filesystem")
    report.check("ALL" in (svc.get("cap_drop") or []), f"{name}: all capabilities dropped")
    report.check("no-new-privileges:true" in (svc.get("security_opt") or []), f"{name}: no-new-privileges")
    env = dict(DEFAULTS)
    env.update({k: str(v) for k, v in (svc.get("environment") or {}).items()})
    data_dir = env["PARTICIPANTS_DATA_DIR"]
    mounts = [str(v).split(":")[1] for v in svc.get("volumes") or [] if ":" in str(v)]
    report.check(env["PARTICIPANTS_BACKEND"] != "local" or data_dir in mounts,
                 f"{name}: data directory {data_dir} is a volume")
    stop = seconds(str(svc.get("stop_grace_period", "10s")))
    budget = seconds(env["PARTICIPANTS_DRAIN_DELAY"]) + seconds(env["PARTICIPANTS_SHUTDOWN_GRACE"])
    report.check(stop > budget, f"{name}: stop_grace_period {stop:g}s > drain + grace {budget:g}s")
    timeout, grace = seconds(env["PARTICIPANTS_REQUEST_TIMEOUT"]), seconds(env["PARTICIPANTS_SHUTDOWN_GRACE"])
    report.check(timeout <= grace, f"{name}: request timeout {timeout:g}s <= shutdown grace {grace:g}s")

    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    match = re.match(r"^https?://([^:/]+):(\d+)$", endpoint)
    if not report.check(bool(match) and match.group(1) in services, f"{name}: exports traces to a compose service ({endpoint})"):
        return
    collector_name, otlp_port = match.group(1), match.group(2)
    collector = services[collector_name]
    config_mounts = [str(v).split(":") for v in collector.get("volumes") or []]
    configs = [COMPOSE.parent / m[0] for m in config_mounts if m[0].endswith((".yaml", ".yml"))]
    if not report.check(len(configs) == 1 and configs[0].is_file(), f"{collector_name}: its configuration file exists"):
        return
    config = yaml.safe_load(configs[0].read_text())
    receivers = config.get("receivers", {})
    grpc_endpoint = ((receivers.get("otlp") or {}).get("protocols", {}).get("grpc") or {}).get("endpoint", "")
    report.check(grpc_endpoint.endswith(f":{otlp_port}"), f"{collector_name}: OTLP gRPC receiver on port {otlp_port}",
                 f"receiver endpoint {grpc_endpoint!r}")
    for pipeline_name, pipeline in (config.get("service", {}).get("pipelines") or {}).items():
        for section in ("receivers", "processors", "exporters"):
            defined = config.get(section) or {}
            for component in pipeline.get(section) or []:
                report.check(component in defined, f"{collector_name}: pipeline {pipeline_name} {section[:-1]} {component} is defined")
    for exporter_name, exporter in (config.get("exporters") or {}).items():
        endpoint = (exporter or {}).get("endpoint")
        if endpoint:
            host = re.sub(r"^\w+://", "", endpoint).split(":")[0]
            report.check(host in services, f"{collector_name}: exporter {exporter_name} sends to compose service {host}")


# --------------------------------------------------------------------------- env keys


def check_env_keys(report: Report, help_text: str, rendered: Path) -> None:
    # `[env: NAME=value]`, or `[env: NAME]` for a flag whose value clap hides (a secret).
    documented = set(re.findall(r"\[env: ([A-Z0-9_]+)[=\]]", help_text))
    report.check(bool(documented), f"the binary's --help documents {len(documented)} environment variables")
    sources: dict[str, set[str]] = {}
    for file in sorted(rendered.glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if doc and doc.get("kind") == "ConfigMap":
                sources[f"{file.stem} ConfigMap/{doc['metadata']['name']}"] = set(doc.get("data") or {})
            spec = pod_spec(doc) if doc else None
            for c in (spec or {}).get("containers", []) + (spec or {}).get("initContainers", []):
                if BINARY in c.get("image", "") and c.get("env"):
                    sources[f"{file.stem} {c['name']} env"] = {v["name"] for v in c["env"]}
    for example in sorted(KUBERNETES.rglob("*.example.yaml")):
        for doc in yaml.safe_load_all(example.read_text()):
            if doc and doc.get("kind") == "Secret":
                sources[f"{example.name} Secret/{doc['metadata']['name']}"] = set(doc.get("stringData") or {}) | set(doc.get("data") or {})
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, svc in compose["services"].items():
        if (svc.get("build") or {}).get("dockerfile") == "deploy/Dockerfile":
            sources[f"compose.yaml {name}"] = set(svc.get("environment") or {})
    for where, keys in sources.items():
        unknown = sorted(k for k in keys if k not in documented and not FOREIGN_ENV.match(k))
        report.check(not unknown, f"{where}: every variable is one the program reads ({len(keys)})",
                     f"unknown: {unknown}")


def main(argv: list[str]) -> int:
    report = Report()
    command = argv[1] if len(argv) > 1 else ""
    if command == "dockerfile":
        check_dockerfile(report)
    elif command == "manifests" and len(argv) == 3:
        check_manifests(report, Path(argv[2]))
    elif command == "compose":
        check_compose(report)
    elif command == "env-keys" and len(argv) == 4:
        check_env_keys(report, Path(argv[2]).read_text(), Path(argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return report.finish(f"deploy policy ({command})")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
