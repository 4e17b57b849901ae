"""deploy/ works as written: the files parse, name only keys their tools accept, and agree with the lock.

* ``cluster-aws.yaml`` against Ray's own cluster-config schema (``ray/autoscaler/ray-schema.json``,
  shipped in the installed ``ray``), and every ``ray start`` flag it uses exists in this Ray;
* ``rayjob.yaml`` against the field names of KubeRay's ``ray.io/v1`` RayJob API (listed below from
  KubeRay's API reference: the CRD is not a Python dependency), and its entrypoint parses as a
  ``cptcorpus`` command;
* the Dockerfile's base image and ``rayVersion`` carry the Ray version ``constraints.txt`` pins, and it
  copies only paths that exist;
* ``cc-pt.yaml`` is a valid cptcorpus config with its outputs on object storage.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from pipelines.cli import build_parser
from pipelines.config import load_config

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"

# KubeRay ray.io/v1 field names (https://ray-project.github.io/kuberay/reference/api/).
RAYJOB_SPEC = {"entrypoint", "runtimeEnvYAML", "jobId", "shutdownAfterJobFinishes", "ttlSecondsAfterFinished",
               "activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "clusterSelector", "submitterPodTemplate",
               "submitterConfig", "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "suspend",
               "submissionMode", "managedBy", "deletionStrategy", "metadata"}
RAYCLUSTER_SPEC = {"rayVersion", "enableInTreeAutoscaling", "autoscalerOptions", "headServiceAnnotations",
                   "headGroupSpec", "workerGroupSpecs", "suspend", "managedBy", "gcsFaultToleranceOptions",
                   "authOptions", "upgradeStrategy"}
HEAD_GROUP = {"rayStartParams", "template", "serviceType", "headService", "enableIngress", "suspend"}
WORKER_GROUP = {"groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template",
                "scaleStrategy", "numOfHosts", "idleTimeoutSeconds", "suspend"}
# Kubernetes core/v1 PodSpec and Container fields this manifest may use.
POD_SPEC = {"containers", "volumes", "serviceAccountName", "nodeSelector", "tolerations", "affinity",
            "initContainers", "securityContext", "imagePullSecrets", "priorityClassName"}
CONTAINER = {"name", "image", "imagePullPolicy", "command", "args", "env", "envFrom", "resources",
             "volumeMounts", "ports", "lifecycle", "securityContext", "readinessProbe", "livenessProbe"}


def _yaml(name: str):
    return yaml.safe_load((DEPLOY / name).read_text())


def _locked_ray() -> str:
    pins = dict(line.split("==", 1) for line in (REPO / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    return pins["ray"].strip()


def _ray_start_flags() -> set[str]:
    out = subprocess.run([str(Path(sys.executable).parent / "ray"), "start", "--help"], capture_output=True,
                         text=True, check=True).stdout
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", out))


def _unknown(obj: dict, allowed: set[str], where: str) -> list[str]:
    return [f"{where}.{k}" for k in obj if k not in allowed]


def test_ray_up_cluster_yaml_passes_rays_schema():
    config = _yaml("cluster-aws.yaml")
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    assert config["head_node_type"] in config["available_node_types"]
    flags = _ray_start_flags()
    for cmd in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        words = shlex.split(cmd)
        if words[:2] == ["ray", "start"]:
            used = {w.split("=", 1)[0] for w in words if w.startswith("--")}
            assert used <= flags, f"{cmd!r}: not flags of `ray start` {sorted(used - flags)}"


def test_ray_schema_catches_a_misspelt_key():
    """The check above can fail: Ray's schema rejects a key it does not know."""
    config = _yaml("cluster-aws.yaml")
    config["idle_timeout_minute"] = 5
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError, match="idle_timeout_minute"):
        jsonschema.validate(config, schema)


def _rayjob_problems(job: dict) -> list[str]:
    problems = []
    if job.get("apiVersion") != "ray.io/v1" or job.get("kind") != "RayJob":
        problems.append(f"apiVersion/kind: {job.get('apiVersion')}/{job.get('kind')}, expected ray.io/v1 RayJob")
    spec = job["spec"]
    problems += _unknown(spec, RAYJOB_SPEC, "spec")
    cluster = spec["rayClusterSpec"]
    problems += _unknown(cluster, RAYCLUSTER_SPEC, "spec.rayClusterSpec")
    groups = [("headGroupSpec", cluster["headGroupSpec"], HEAD_GROUP)]
    groups += [(f"workerGroupSpecs[{i}]", g, WORKER_GROUP) for i, g in enumerate(cluster["workerGroupSpecs"])]
    flags = _ray_start_flags()
    for where, group, allowed in groups:
        problems += _unknown(group, allowed, where)
        problems += [f"{where}.rayStartParams.{k}: not a `ray start` flag" for k in group.get("rayStartParams", {})
                     if f"--{k}" not in flags]
        problems += [f"{where}.rayStartParams.{k}: values must be strings" for k, v in
                     group.get("rayStartParams", {}).items() if not isinstance(v, str)]
        pod = group["template"]["spec"]
        problems += _unknown(pod, POD_SPEC, f"{where}.template.spec")
        for c in pod["containers"]:
            problems += _unknown(c, CONTAINER, f"{where}.containers[{c.get('name')}]")
    return problems


def test_rayjob_names_only_kuberay_fields():
    job = _yaml("rayjob.yaml")
    assert _rayjob_problems(job) == []
    broken = _yaml("rayjob.yaml")
    broken["spec"]["shutdownAfterJobFinish"] = True
    broken["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["num-cpu"] = "0"
    assert sorted(_rayjob_problems(broken)) == [
        "headGroupSpec.rayStartParams.num-cpu: not a `ray start` flag", "spec.shutdownAfterJobFinish"]


def test_rayjob_entrypoint_is_a_cptcorpus_command_on_the_mounted_config():
    job = _yaml("rayjob.yaml")
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[0] == "cptcorpus"
    args = build_parser().parse_args(words[1:])
    assert args.command == "run"
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mounts = [m["mountPath"] for c in head["containers"] for m in c.get("volumeMounts", [])]
    assert any(args.config.startswith(m + "/") for m in mounts), (args.config, mounts)
    assert Path(args.config).name == "cc-pt.yaml" and (DEPLOY / "cc-pt.yaml").is_file()


def test_image_and_cluster_carry_the_locked_ray_version():
    locked = _locked_ray()
    docker = (DEPLOY / "Dockerfile").read_text()
    base = re.search(r"^FROM rayproject/ray:(\S+)", docker, re.M)
    assert base and base.group(1).split("-")[0] == locked, (base and base.group(0), locked)
    assert _yaml("rayjob.yaml")["spec"]["rayClusterSpec"]["rayVersion"] == locked
    for line in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", docker, re.M):
        for src in line.split():
            assert (REPO / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
    assert "-c constraints.txt" in docker


def test_cluster_config_is_valid_and_writes_to_object_storage():
    config = load_config(DEPLOY / "cc-pt.yaml")
    assert config.output.startswith("s3://")
    assert set(config.storage_options) <= {"s3", "gcs", "gs"}
