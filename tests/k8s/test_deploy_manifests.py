"""deploy/: every manifest validates, and the pieces agree with each other and with the pod spec.

Core Kubernetes objects are validated with kubernetes-validate (offline OpenAPI schemas).
Crossplane claims are validated against the openAPIV3Schema of their own XRD; compositions are
checked by applying their patches to their bases for the checked-in claims (a small emulation
of function-patch-and-transform's FromCompositeFieldPath/convert/map/match).
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from facefactory.operators.pod_spec import GPU_TAINT_KEY, SETTINGS
from facefactory.operators.s3.lifecycle import LifecyclePolicy

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBE_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
CORE_GROUPS = {"v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1",
               "policy/v1", "scheduling.k8s.io/v1"}


def docs(sub: str) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted((DEPLOY / sub).rglob("*.yaml")):
        out += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def by_kind(kind: str, sub: str = ".") -> list[dict[str, Any]]:
    return [d for _, d in docs(sub) if d.get("kind") == kind]


def default(name: str) -> str:
    return SETTINGS[name][0]


CORE = [(p, d) for p, d in docs("k8s") if d["apiVersion"] in CORE_GROUPS]


def test_every_k8s_manifest_is_core_kubernetes() -> None:
    assert len(CORE) == len(docs("k8s")) >= 10


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize(("path", "doc"), CORE, ids=[f"{p.name}:{d['kind']}:{d['metadata']['name']}" for p, d in CORE])
def test_core_manifest_validates(path: Path, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


# ---- Crossplane ---------------------------------------------------------------------------

XRDS = {d["spec"]["names"]["kind"]: d for d in by_kind("CompositeResourceDefinition", "crossplane")}
CLAIM_KINDS = {x["spec"]["claimNames"]["kind"]: x for x in XRDS.values()}
CLAIMS = [d for _, d in docs("crossplane/claims")]
COMPOSITIONS = {d["metadata"]["name"]: d for d in by_kind("Composition", "crossplane")}
# fields Crossplane adds to every claim/composite schema itself
RESERVED = {"compositionRef", "compositionSelector", "compositionUpdatePolicy", "compositeDeletePolicy",
            "writeConnectionSecretToRef", "publishConnectionDetailsTo", "resourceRef"}


def schema_of(xrd: dict[str, Any]) -> dict[str, Any]:
    (version,) = [v for v in xrd["spec"]["versions"] if v["referenceable"]]
    return version["schema"]["openAPIV3Schema"]


def with_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Apply OpenAPI `default`s like the API server does for structural schemas."""
    if schema.get("type") == "object" and isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = with_defaults(sub, value[key])
    return value


def test_xrds_are_consistent() -> None:
    assert set(XRDS) == {"XGpuNodePool", "XFaceBuckets"}
    for xrd in XRDS.values():
        spec = xrd["spec"]
        assert xrd["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
        jsonschema.Draft7Validator.check_schema(schema_of(xrd))
        assert spec["defaultCompositionRef"]["name"] in COMPOSITIONS


@pytest.mark.parametrize("claim", CLAIMS, ids=[c["kind"] for c in CLAIMS])
def test_claims_validate_against_their_xrd(claim: dict[str, Any]) -> None:
    xrd = CLAIM_KINDS[claim["kind"]]
    group, version = claim["apiVersion"].split("/")
    assert group == xrd["spec"]["group"] and version in {v["name"] for v in xrd["spec"]["versions"]}
    body = {"spec": {k: v for k, v in claim["spec"].items() if k not in RESERVED}}
    jsonschema.validate(body, schema_of(xrd))
    assert claim["metadata"]["namespace"] == default("FACEFACTORY_K8S_NAMESPACE")


def test_claim_schema_rejects_bad_claims() -> None:
    schema = schema_of(XRDS["XGpuNodePool"])
    (claim,) = [c for c in CLAIMS if c["kind"] == "GpuNodePool"]
    bad = copy.deepcopy(claim["spec"])
    bad["minNodes"] = -1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": bad}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {k: v for k, v in claim["spec"].items() if k != "maxNodes"}}, schema)


def test_compositions_reference_real_fields_and_functions() -> None:
    functions = {f["metadata"]["name"] for f in by_kind("Function", "crossplane")}
    for comp in COMPOSITIONS.values():
        ref = comp["spec"]["compositeTypeRef"]
        xrd = XRDS[ref["kind"]]
        assert ref["apiVersion"] == f"{xrd['spec']['group']}/v1alpha1"
        props = schema_of(xrd)["properties"]["spec"]["properties"]
        for step in comp["spec"]["pipeline"]:
            assert step["functionRef"]["name"] in functions
            for resource in step["input"]["resources"]:
                for patch in resource.get("patches", []):
                    assert patch["type"] == "FromCompositeFieldPath"
                    field = patch["fromFieldPath"]
                    assert field.startswith("spec.") and field[5:] in props, (comp["metadata"]["name"], field)


# -- a small patch-and-transform emulation: enough to render the checked-in claims ------------

_SEGMENT = re.compile(r'([^.\[\]]+)|\[(\d+)\]|\["([^"]+)"\]')


def _path(path: str) -> list[str | int]:
    out: list[str | int] = []
    for name, index, key in _SEGMENT.findall(path):
        out.append(int(index) if index else (key or name))
    return out


def _get(obj: Any, path: str) -> Any:
    for part in _path(path):
        obj = obj[part]
    return obj


def _set(obj: Any, path: str, value: Any) -> None:
    parts = _path(path)
    for part, nxt in zip(parts, parts[1:]):
        if isinstance(part, int):
            while len(obj) <= part:
                obj.append({})
            obj = obj[part]
        else:
            obj = obj.setdefault(part, [] if isinstance(nxt, int) else {})
    obj[parts[-1]] = value


def _transform(value: Any, transforms: list[dict[str, Any]]) -> Any:
    for t in transforms:
        if t["type"] == "convert":
            value = str(value).lower() if isinstance(value, bool) else str(value)
        elif t["type"] == "map":
            value = t["map"][value]
        elif t["type"] == "match":
            hits = [p["result"] for p in t["match"]["patterns"] if p["type"] == "literal" and p["literal"] == value]
            value = hits[0] if hits else t["match"]["fallbackValue"]
        else:
            raise AssertionError(f"unsupported transform {t['type']}")
    return value


def render(comp_name: str, claim_kind: str) -> dict[str, dict[str, Any]]:
    (claim,) = [c for c in CLAIMS if c["kind"] == claim_kind]
    xr = with_defaults(schema_of(CLAIM_KINDS[claim_kind]), {"spec": copy.deepcopy(claim["spec"])})
    out = {}
    for step in COMPOSITIONS[comp_name]["spec"]["pipeline"]:
        for resource in step["input"]["resources"]:
            body = copy.deepcopy(resource["base"])
            for patch in resource.get("patches", []):
                try:
                    value = _get(xr, patch["fromFieldPath"])
                except (KeyError, IndexError):
                    assert patch.get("policy", {}).get("fromFieldPath") == "Optional", patch
                    continue
                _set(body, patch["toFieldPath"], _transform(value, patch.get("transforms", [])))
            out[resource["name"]] = body
    return out


def test_gpu_node_pool_scales_from_zero_with_the_pods_taint_and_label() -> None:
    (claim,) = [c for c in CLAIMS if c["kind"] == "GpuNodePool"]
    ng = render("gpunodepool-eks", "GpuNodePool")["node-group"]["spec"]["forProvider"]
    selector_key, selector_value = default("FACEFACTORY_K8S_NODE_SELECTOR").split("=")
    assert ng["labels"] == {selector_key: selector_value}
    assert ng["taint"] == [{"key": GPU_TAINT_KEY, "value": "true", "effect": "NO_SCHEDULE"}]
    assert ng["scalingConfig"] == [{"minSize": 0, "maxSize": claim["spec"]["maxNodes"]}]
    assert ng["capacityType"] == "SPOT" and ng["amiType"].endswith("NVIDIA")
    assert ng["instanceTypes"] == claim["spec"]["instanceTypes"]
    tags = ng["tags"]
    assert tags[f"k8s.io/cluster-autoscaler/node-template/label/{selector_key}"] == selector_value
    assert tags[f"k8s.io/cluster-autoscaler/node-template/taint/{GPU_TAINT_KEY}"] == "true:NoSchedule"
    assert tags["k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"] == default("FACEFACTORY_K8S_GPUS")


def test_buckets_encrypted_private_and_expire_intermediates_like_the_cli() -> None:
    (claim,) = [c for c in CLAIMS if c["kind"] == "FaceBuckets"]
    res = render("facebuckets-aws", "FaceBuckets")
    assert res["work-bucket"]["metadata"]["annotations"]["crossplane.io/external-name"] == claim["spec"]["workBucket"]
    for name in ("work-encryption", "publish-encryption"):
        rule = res[name]["spec"]["forProvider"]["rule"][0]
        assert rule["applyServerSideEncryptionByDefault"][0]["sseAlgorithm"] == "AES256"  # kmsKeyArn ""
        assert rule["bucketKeyEnabled"] is True
    for name in ("work-public-access-block", "publish-public-access-block"):
        assert all(res[name]["spec"]["forProvider"][k] is True for k in
                   ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    # the same rules `facefactory s3 setup-lifecycle` applies, in upjet's field names
    expected = []
    for rule in LifecyclePolicy(intermediate_days=claim["spec"]["intermediateDays"]).rules():
        item: dict[str, Any] = {"id": rule["ID"], "status": rule["Status"]}
        f = rule["Filter"]
        if "And" in f:
            item["filter"] = [{"and": [{"prefix": f["And"]["Prefix"],
                                        "tags": {t["Key"]: t["Value"] for t in f["And"]["Tags"]}}]}]
        else:
            item["filter"] = [{"prefix": f["Prefix"]}]
        if "Expiration" in rule:
            item["expiration"] = [{"days": rule["Expiration"]["Days"]}]
        if "AbortIncompleteMultipartUpload" in rule:
            item["abortIncompleteMultipartUpload"] = [
                {"daysAfterInitiation": rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]}]
        expected.append(item)
    assert res["work-lifecycle"]["spec"]["forProvider"]["rule"] == expected


def test_kms_key_switches_to_sse_kms() -> None:
    patches = COMPOSITIONS["facebuckets-aws"]["spec"]["pipeline"][0]["input"]["resources"][1]["patches"]
    algo = next(p for p in patches if p["toFieldPath"].endswith("sseAlgorithm"))
    assert _transform("arn:aws:kms:eu-west-1:1:key/x", algo["transforms"]) == "aws:kms"
    assert _transform("", algo["transforms"]) == "AES256"


# ---- cluster objects agree with the pod spec, the pool and the node pool -----------------

def test_cluster_objects_match_pod_defaults() -> None:
    namespace = default("FACEFACTORY_K8S_NAMESPACE")
    assert [n["metadata"]["name"] for n in by_kind("Namespace", "k8s")] == [namespace]
    (sa,) = by_kind("ServiceAccount", "k8s")
    assert sa["metadata"]["name"] == default("FACEFACTORY_K8S_SERVICE_ACCOUNT")
    assert sa["automountServiceAccountToken"] is False
    (pvc,) = by_kind("PersistentVolumeClaim", "k8s")
    assert pvc["metadata"]["name"] == default("FACEFACTORY_K8S_MODEL_PVC") and "ReadOnlyMany" in pvc["spec"]["accessModes"]
    (role,) = by_kind("Role", "k8s")
    verbs = {(tuple(r["resources"]), v) for r in role["rules"] for v in r["verbs"]}
    assert {(("pods",), "create"), (("pods",), "delete"), (("pods/log",), "get"), (("pods/exec",), "create")} <= verbs
    (plugin,) = by_kind("DaemonSet", "k8s")
    key, value = default("FACEFACTORY_K8S_NODE_SELECTOR").split("=")
    assert plugin["spec"]["template"]["spec"]["nodeSelector"] == {key: value}
    assert plugin["spec"]["template"]["spec"]["tolerations"][0]["key"] == GPU_TAINT_KEY


def test_gpu_budget_is_one_number_everywhere() -> None:
    (claim,) = [c for c in CLAIMS if c["kind"] == "GpuNodePool"]
    (quota,) = by_kind("ResourceQuota", "k8s")
    (job,) = [j for j in by_kind("Job", "k8s") if j["metadata"]["name"] == "facefactory-pools"]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    pool_size = int(args[args.index("gpu_swaps") + 1])
    gpus_per_pod = int(default("FACEFACTORY_K8S_GPUS"))
    assert pool_size * gpus_per_pod == claim["spec"]["maxNodes"] == int(quota["spec"]["hard"]["requests.nvidia.com/gpu"])


def test_helm_values() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "airflow-values.yaml").read_text())
    assert values["executor"] in {"KubernetesExecutor", "CeleryExecutor"}
    assert values["airflowVersion"] == "3.3.2"
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["FACEFACTORY_RUNNER"] == "kubernetes"
    assert env["FACEFACTORY_K8S_NAMESPACE"] == default("FACEFACTORY_K8S_NAMESPACE")
    (claim,) = [c for c in CLAIMS if c["kind"] == "FaceBuckets"]
    assert env["FACEFACTORY_WORK_ROOT"] == f"s3://{claim['spec']['workBucket']}"
    assert env["FACEFACTORY_PUBLISH_TO"].startswith(f"s3://{claim['spec']['publishBucket']}/")
    logging = values["config"]["logging"]
    assert logging["remote_logging"] == "True" and logging["remote_base_log_folder"].startswith("s3://")
    assert "secretRef" in values["extraEnvFrom"]
    text = (DEPLOY / "helm" / "airflow-values.yaml").read_text().lower()
    assert not re.search(r"(password|secret_access_key|aws_secret)\s*:", text), "credentials belong in secrets"
