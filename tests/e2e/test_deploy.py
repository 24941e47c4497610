"""Deployment files, checked without a Docker engine or a cluster: the compose files against the
compose specification, the Dockerfile with hadolint, the Kubernetes manifests against Kubernetes'
schemas, and the image's own start and health commands run here, outside Docker."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml

from tests.helpers.media import FIXTURES, place
from tests.helpers.paths import REPOSITORY
from tests.helpers.service import free_port
from tests.helpers.waiting import wait_until

ROOT = REPOSITORY
BIN = Path(sys.executable).parent
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.gpu.yml")
MANIFESTS = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
KUBERNETES_VERSION = "1.30.0"
# Where the image keeps its state; the test maps each to a folder of its own.
IMAGE_FOLDERS = ("/data", "/inbox", "/outbox", "/models")


def check_compose(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", *files],
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_files_follow_the_compose_specification(tmp_path: Path) -> None:
    result = check_compose(*(ROOT / name for name in COMPOSE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    # The check can fail: a misspelt key is refused.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        (ROOT / "docker-compose.yml").read_text().replace("depends_on:", "depend_on:")
    )
    assert check_compose(broken).returncode != 0


def test_compose_runs_the_service_against_a_healthy_postgres() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    postgres, service = services["postgres"], services["whisper-transcriber"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert service["environment"]["WHISPER_TRANSCRIBER_DATABASE_URL"].startswith("postgresql://")
    mounts = {volume.split(":")[1] for volume in service["volumes"]}
    assert {"/inbox", "/outbox", "/models"} <= mounts
    assert services["worker"]["command"] == ["serve", "--role", "work"]
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "whisper-transcriber", "check"]
    gpu = yaml.safe_load((ROOT / "docker-compose.gpu.yml").read_text())["services"]
    [device] = gpu["whisper-transcriber"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [BIN / "hadolint", "--no-color", ROOT / "Dockerfile"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its (INSTRUCTION, arguments), continuation lines joined."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    logical = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        logical += line.rstrip("\\").strip() + " "
        if line.endswith("\\"):
            continue
        instruction, _, arguments = logical.strip().partition(" ")
        logical = ""
        if instruction.upper() == "FROM":
            current = []
            stages[arguments.split()[-1]] = current
        current.append((instruction.upper(), arguments.strip()))
    return stages


def test_dockerfile_is_multi_stage_slim_and_unprivileged() -> None:
    stages = dockerfile_stages()
    assert {"build", "runtime", "gpu"} <= set(stages)
    runtime = dict(stages["runtime"])
    assert runtime["FROM"].startswith("python:3.11-slim")
    assert runtime["USER"] not in ("root", "0", "0:0")
    assert "/health" in runtime["HEALTHCHECK"]
    assert "COPY --from=build /opt/venv /opt/venv" in {
        f"COPY {a}" for i, a in stages["runtime"] if i == "COPY"
    }


def image_environment(tmp_path: Path, port: int) -> dict[str, str]:
    """The runtime stage's ENV, with the image's folders mapped into tmp_path."""
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path)}
    for instruction, arguments in dockerfile_stages()["runtime"]:
        if instruction != "ENV":
            continue
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            if name == "PATH":
                continue
            for folder in IMAGE_FOLDERS:
                value = value.replace(folder, str(tmp_path / folder.strip("/")))
            env[name] = value
    env["WHISPER_TRANSCRIBER_PORT"] = str(port)
    return env


def test_image_start_and_health_commands_work_outside_docker(tmp_path: Path) -> None:
    stages = dockerfile_stages()
    runtime = dict(stages["runtime"])
    command = [*json.loads(runtime["ENTRYPOINT"]), *json.loads(runtime["CMD"])]
    health = json.loads(runtime["HEALTHCHECK"].split(" CMD ", 1)[1])
    port = free_port()
    env = image_environment(tmp_path, port)
    for folder in IMAGE_FOLDERS:
        (tmp_path / folder.strip("/")).mkdir()
    source = place(FIXTURES / "speech_a.wav", tmp_path / "inbox")
    log = tmp_path / "image.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / command[0]), *command[1:]],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def healthy() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 60, "the image's command to serve /health")
        check = subprocess.run(health, env=env, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        # The image's defaults at work: SQLite in /data, the bundled model, the /inbox folder.
        wait_until(source.with_suffix(".txt").exists, 120, "the dropped file's transcript")
        assert "museum" in source.with_suffix(".txt").read_text().lower()
        assert (tmp_path / "data" / "whisper-transcriber.db").exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stopped = subprocess.run(health, env=env, capture_output=True, text=True, timeout=30)
    assert stopped.returncode != 0  # the health check can fail


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda path: path.name)
def test_kubernetes_manifests_validate(manifest: Path) -> None:
    for resource in yaml.safe_load_all(manifest.read_text()):
        if resource["kind"] == "Kustomization":
            assert set(resource["resources"]) == {
                path.name for path in MANIFESTS if path.name != "kustomization.yaml"
            }
            continue
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_kubernetes_layout() -> None:
    resources = {
        (doc["kind"], doc["metadata"]["name"]): doc
        for path in MANIFESTS
        for doc in yaml.safe_load_all(path.read_text())
        if doc["kind"] != "Kustomization"
    }
    front = resources["Deployment", "whisper-transcriber-front"]["spec"]["template"]["spec"]
    workers = resources["Deployment", "whisper-transcriber-workers"]["spec"]["template"]["spec"]
    for pod, secrets in ((front, {"database-url", "api-key"}), (workers, {"database-url"})):
        [container] = pod["containers"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert {
            item["valueFrom"]["secretKeyRef"]["key"]
            for item in container["env"]
            if "valueFrom" in item
        } == secrets
    [front_container], [worker_container] = front["containers"], workers["containers"]
    assert front_container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert front_container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert front_container["args"] == ["serve", "--role", "api,watch"]
    # Work-only pods serve no HTTP: the worker registry is their liveness probe.
    assert worker_container["args"] == ["serve", "--role", "work"]
    assert "ports" not in worker_container and "readinessProbe" not in worker_container
    assert worker_container["livenessProbe"]["exec"]["command"] == ["whisper-transcriber", "check"]
    assert resources["PersistentVolumeClaim", "whisper-transcriber-inbox"]["spec"][
        "accessModes"
    ] == ["ReadWriteMany"]
    assert ("Secret", "whisper-transcriber") in resources and (
        "Service",
        "whisper-transcriber",
    ) in resources
