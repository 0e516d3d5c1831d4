"""infra/: Terraform for GKE and the bucket, the Kubeflow Pipelines overlay, checked as far as this machine allows.

No cloud and no cluster here: the HCL is parsed (python-hcl2) and its references
resolved by hand, the Kubernetes manifests are validated against the schemas
kubernetes-validate bundles (offline), YAML is linted, and the pieces are
checked against each other and against the code that relies on them.
"""

from __future__ import annotations

import json

import re
import socket
import subprocess
import sys
from pathlib import Path

import hcl2
import kubernetes_validate
import pytest
import yaml
from hcl2 import SerializationOptions

from optbench.cli.config import CONFIG_KEYS
from optbench.pipelines.cluster import GPU_TAINT, ClusterConfig

REPO = Path(__file__).resolve().parents[2]  # tests/infra/ is two folders down
TF = REPO / "infra" / "terraform"
KFP = REPO / "infra" / "kfp"
OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=False
)
# The oldest Kubernetes minor GKE's regular channel still runs, and the newest schemas bundled.
K8S_VERSIONS = ("1.33", kubernetes_validate.latest_version())


def unwrap(value):
    """HCL blocks come as lists; a block written once is easier to read as the mapping itself."""
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [unwrap(v) for v in value]
        return items[0] if len(items) == 1 and isinstance(items[0], dict) else items
    return value


def load(path: Path) -> dict:
    with open(path) as f:
        return unwrap(hcl2.load(f, serialization_options=OPTIONS))


@pytest.fixture(scope="module")
def tf() -> dict:
    """Every .tf file merged: {"resource": {type: {name: body}}, "variable": {...}, "output": {...}}."""
    merged: dict = {"resource": {}, "variable": {}, "output": {}}
    for path in sorted(TF.glob("*.tf")):
        for kind, blocks in load(path).items():
            for block in blocks if isinstance(blocks, list) else [blocks]:  # several blocks of a kind, or one
                if kind == "resource":
                    for rtype, named in block.items():
                        merged["resource"].setdefault(rtype, {}).update(named)
                elif kind in ("variable", "output"):
                    merged[kind].update(block)
                else:
                    merged.setdefault(kind, []).append(block)
    return merged


def resources(tf: dict, rtype: str) -> dict:
    return tf["resource"].get(rtype, {})


def tf_text() -> str:
    return "\n".join(p.read_text() for p in sorted(TF.glob("*.tf")))


@pytest.mark.parametrize("path", sorted(TF.glob("*.tf")), ids=lambda p: p.name)
def test_every_terraform_file_parses(path):
    assert load(path)


def test_every_reference_resolves_and_every_variable_is_used(tf):
    text = tf_text()
    used_vars = set(re.findall(r"\bvar\.(\w+)", text))
    assert used_vars == set(tf["variable"]), (
        f"undeclared: {used_vars - set(tf['variable'])}, unused: {set(tf['variable']) - used_vars}"
    )
    declared = {(t, n) for t, named in tf["resource"].items() for n in named}
    referenced = set(re.findall(r"(?<![\w.])(google_[a-z0-9_]+)\.([a-z0-9_]+)\b", text))
    referenced -= {(t, n) for t, n in referenced if f'resource "{t}" "{n}"' in text}
    assert referenced <= declared, referenced - declared


def test_the_provider_is_pinned(tf):
    (terraform,) = tf["terraform"]
    google = terraform["required_providers"]["google"]
    assert google["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> \d+\.\d+\.\d+|\d+\.\d+\.\d+", google["version"]), google["version"]


def test_the_gpu_pool_scales_from_zero_and_only_gpu_tasks_tolerate_it(tf):
    pools = resources(tf, "google_container_node_pool")
    gpu, cpu = pools["gpu"], pools["cpu"]
    assert gpu["autoscaling"]["min_node_count"] == 0
    node = gpu["node_config"]
    assert node["guest_accelerator"]["type"] == "${var.gpu_type}"
    taint = node["taint"]
    assert (taint["key"], taint["value"]) == (GPU_TAINT["key"], GPU_TAINT["value"])
    assert taint["effect"] == "NO_SCHEDULE" and GPU_TAINT["effect"] == "NoSchedule"
    assert "taint" not in cpu["node_config"]
    assert tf["variable"]["gpu_type"]["default"] == ClusterConfig.__dataclass_fields__["gpu_type"].default, (
        "optbench compile's default GPU type is the one the infra provisions"
    )
    for pool in (gpu, cpu):
        assert pool["node_config"]["workload_metadata_config"]["mode"] == "GKE_METADATA"
        assert pool["node_config"]["service_account"] == "${google_service_account.nodes.email}"
        assert pool["autoscaling"]["max_node_count"]
    cluster = resources(tf, "google_container_cluster")["optbench"]
    assert cluster["workload_identity_config"]["workload_pool"] == "${var.project_id}.svc.id.goog"
    assert cluster["remove_default_node_pool"] is True


def test_the_bucket_is_private_versioned_and_expires_old_versions(tf):
    bucket = resources(tf, "google_storage_bucket")["artifacts"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"]["enabled"] is True
    rules = bucket["lifecycle_rule"]
    assert any(r["action"]["type"] == "Delete" and "days_since_noncurrent_time" in r["condition"] for r in rules)
    # retention: a cluster run's artifacts age out of the pipeline root; the history's records are elsewhere
    aging = bucket["dynamic"]["lifecycle_rule"]["content"]
    assert aging["condition"]["matches_prefix"] == ["pipeline-root/"] and aging["action"]["type"] == "Delete"
    assert aging["condition"]["age"] == "${lifecycle_rule.value}" and tf["variable"]["pipeline_root_days"]["default"]
    assert "history/" not in json.dumps(rules)


def test_no_key_files_and_least_privilege(tf):
    assert not resources(tf, "google_service_account_key"), "Workload Identity, never key files"
    project_roles = [r["role"] for r in resources(tf, "google_project_iam_member").values()]
    assert not [
        r
        for r in project_roles
        if r.startswith("roles/storage.") or r in ("roles/owner", "roles/editor", "roles/viewer")
    ], project_roles
    assert not resources(tf, "google_project_iam_binding") and not resources(tf, "google_project_iam_policy")
    bucket_roles = {r["role"] for r in resources(tf, "google_storage_bucket_iam_member").values()}
    assert bucket_roles <= {"roles/storage.objectUser", "roles/storage.objectViewer"}


def kfp_service_accounts() -> dict[str, dict]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted((KFP / "patches").glob("*.yaml"))]
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}


def test_workload_identity_binds_exactly_the_service_accounts_the_overlay_annotates(tf):
    bindings = [
        b
        for b in resources(tf, "google_service_account_iam_member").values()
        if b["role"] == "roles/iam.workloadIdentityUser"
    ]
    bound = set()
    for binding in bindings:
        match = re.fullmatch(
            r"serviceAccount:\$\{var\.project_id\}\.svc\.id\.goog\[\$\{var\.kfp_namespace\}/"
            r"([a-z0-9-]+)\]",
            binding["member"],
        )
        assert match, binding["member"]
        bound.add(match.group(1))
    annotated = kfp_service_accounts()
    assert bound == set(annotated)
    assert all("iam.gke.io/gcp-service-account" in sa["metadata"]["annotations"] for sa in annotated.values())
    assert (
        yaml.safe_load((KFP / "kustomization.yaml").read_text())["namespace"]
        == tf["variable"]["kfp_namespace"]["default"]
    )


def heredoc_keys(value: str) -> list[str]:
    return re.findall(r"^\s*(\w+)=", value, flags=re.M)


def test_terraform_outputs_feed_the_kfp_overlay_and_the_cli(tf):
    kustomization = yaml.safe_load((KFP / "kustomization.yaml").read_text())
    params = [line.split("=", 1)[0] for line in (KFP / "params.env").read_text().splitlines() if line]
    assert heredoc_keys(tf["output"]["kfp_params"]["value"]) == params
    sources = [r["source"]["fieldPath"].removeprefix("data.") for r in kustomization["replacements"]]
    assert sorted(sources) == sorted(params)
    config_keys = set(re.findall(r"[{,]\s*(\w+)\s*=", tf["output"]["optbench_config"]["value"]))
    assert config_keys and config_keys <= set(CONFIG_KEYS), config_keys - set(CONFIG_KEYS)


def test_the_overlay_pins_kfp_to_the_client_version_and_its_files_exist():
    lock = dict(line.split("==") for line in (REPO / "requirements.lock").read_text().splitlines() if "==" in line)
    for path in (KFP / "kustomization.yaml", KFP / "cluster-scoped" / "kustomization.yaml"):
        kustomization = yaml.safe_load(path.read_text())
        remote = [r for r in kustomization["resources"] if "://" in r]
        assert remote and all(r.endswith(f"?ref={lock['kfp-server-api']}") for r in remote), remote
    kustomization = yaml.safe_load((KFP / "kustomization.yaml").read_text())
    local = [p["path"] for p in kustomization["patches"]] + kustomization["configMapGenerator"][0]["envs"]
    assert all((KFP / p).is_file() for p in local), local
    patched = {
        (d["kind"], d["metadata"]["name"])
        for d in map(lambda p: yaml.safe_load((KFP / p).read_text()), [p["path"] for p in kustomization["patches"]])
    }
    targets = {(t["select"]["kind"], t["select"]["name"]) for r in kustomization["replacements"] for t in r["targets"]}
    assert targets == patched, "every value the overlay sets lands on a resource it patches"


def test_the_launcher_writes_to_gcs_with_workload_identity_credentials():
    launcher = yaml.safe_load((KFP / "patches" / "kfp-launcher.yaml").read_text())
    providers = yaml.safe_load(launcher["data"]["providers"])
    assert providers["gs"]["default"]["credentials"] == {"fromEnv": True}


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test: schema validation must work offline."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def manifests() -> list[dict]:
    docs = [d for p in sorted((KFP / "patches").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]
    params = dict(line.split("=", 1) for line in (KFP / "params.env").read_text().splitlines() if line)
    generated = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "data": params,
        "metadata": {"name": "optbench-params", "annotations": {"config.kubernetes.io/local-config": "true"}},
    }
    return [*docs, generated]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_manifests_validate_against_the_kubernetes_schemas_offline(offline, version):
    for doc in manifests():
        kubernetes_validate.validate(doc, version, strict=True)
    broken = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "x"},
        "automountServiceAccountToken": "yes",
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_yamllint_passes():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "yamllint",
            "--strict",
            "-c",
            str(REPO / "infra" / ".yamllint.yaml"),
            str(REPO / "infra"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_walkthrough_names_real_outputs_and_make_targets(tf):
    readme = (REPO / "infra" / "README.md").read_text()
    outputs = set(re.findall(r"output -raw (\w+)", readme))
    assert outputs and outputs <= set(tf["output"]), outputs - set(tf["output"])
    makefiles = (REPO / "Makefile").read_text() + "".join(p.read_text() for p in (REPO / "mk").glob("*.mk"))
    targets = set(re.findall(r"\bmake ([a-z][\w-]*)", readme))
    assert targets and all(re.search(rf"^{t}:", makefiles, flags=re.M) for t in targets), targets
