"""Check rendered manifests before they are committed: schemas, strictly, then checkov.

Contract:

- :func:`validate` takes the files of a rendered folder (``{filename: yaml_text}``, as
  :mod:`inferops.gitops.render` returns them) and returns a list of :class:`Problem`, empty
  when every object is valid. A problem names the object (``Kind/namespace/name``), the field
  path (``spec.template.spec.containers[0].image``) and what is wrong.
- Built-in kinds are validated with ``kubernetes-validate`` against the schemas of the
  cluster's Kubernetes version (default 1.33) in strict mode: an unknown field is a problem,
  as it is for ``kubectl apply --validate=strict``. kubernetes-validate stops at an object's
  first error, so a built-in object shows one problem at a time.
- Custom resources are validated against the ``openAPIV3Schema`` of their CRD, vendored in
  ``gitops/schemas/`` as one trimmed CustomResourceDefinition per kind. Where they came from:
  the upstream CRDs (prometheus-operator's ServiceMonitor, kubernetes-sigs/gateway-api's
  HTTPRoute, Argo CD's Application, Flux's Kustomization and GitRepository) as published,
  converted to JSON, in the datreeio/CRDs-catalog repository; each file's header names the
  catalog file and its commit. The copies keep the structure, types, enums, patterns, bounds
  and required fields of the versions used and drop descriptions, CEL rules (JSON Schema cannot
  run them) and the subtrees controllers write (``status``; an Application's ``operation``).
  An object schema with ``properties`` and without ``x-kubernetes-preserve-unknown-fields``
  rejects any other field, as strict field validation does, and ``metadata`` is checked
  against ObjectMeta like a built-in kind's. Every problem of a custom resource is reported.
- An object of a kind that has neither a built-in schema nor a vendored CRD is a problem,
  never skipped: vendor its CRD or leave the object out.
- checkov (framework ``kubernetes``, offline) runs on the rendered folder; each failed check
  is a problem. A deliberate exception is made in the manifest source, on the object, with
  a ``checkov.io/skipN: CKV_K8S_xx=<reason>`` annotation, never by skipping a check here.
- :class:`ValidatorError` means a validator could not run (not installed, crashed); it says
  what to install.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = ROOT / "gitops" / "schemas"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
KUBERNETES_VERSION = "1.33"
CHECKOV_TIMEOUT_S = 300


class ValidatorError(RuntimeError):
    """A validator could not run; the message says what to install or fix."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one object: which object, which field, and what."""

    object: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.object}: {self.field or '(object)'}: {self.message}"


def object_id(obj: Mapping[str, Any]) -> str:
    """``Kind/namespace/name``, or ``Kind/name`` for an object without a namespace."""
    raw = obj.get("metadata")
    meta: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    kind, name, ns = obj.get("kind", "?"), meta.get("name", "?"), meta.get("namespace")
    return f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"


def field_path(parts: Iterable[Any]) -> str:
    """``spec.containers[0].image`` from the parts ``["spec", "containers", 0, "image"]``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_objects(files: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The Kubernetes objects in ``files`` (kustomization.yaml aside), and what is not one."""
    objects: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for name in sorted(files):
        if not name.endswith((".yaml", ".yml")) or Path(name).name == "kustomization.yaml":
            continue
        try:
            docs = [d for d in yaml.safe_load_all(files[name]) if d is not None]
        except yaml.YAMLError as exc:
            problems.append(Problem(name, "", f"not valid YAML: {exc}"))
            continue
        for doc in docs:
            if isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"):
                objects.append(doc)
            else:
                problems.append(Problem(name, "", "a document without apiVersion and kind"))
    return objects, problems


# --- schemas ---------------------------------------------------------------------------------


_REQUIRED = re.compile(r"^'(?P<name>.+)' is a required property$")


def _schema_problems(ident: str, errors: Iterable[jsonschema.ValidationError]) -> list[Problem]:
    problems = []
    for err in errors:
        path = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
            # One problem per unknown field, named in the path: that is what a person fixes.
            known = err.schema.get("properties", {}) if isinstance(err.schema, Mapping) else {}
            for key in sorted(str(k) for k in err.instance if k not in known):
                problems.append(
                    Problem(ident, field_path([*path, key]), "unknown field (strict: rejected)")
                )
            continue
        required = _REQUIRED.match(err.message) if err.validator == "required" else None
        if required:
            path.append(required["name"])
            problems.append(Problem(ident, field_path(path), "required field is missing"))
            continue
        problems.append(Problem(ident, field_path(path), err.message))
    return problems


def _kubernetes_validate() -> Any:
    try:
        # The dev extra; imported here so that importing this module never needs it.
        from kubernetes_validate import utils
    except ImportError:
        raise ValidatorError(
            "kubernetes-validate is not installed: pip install kubernetes-validate "
            "(in the dev extra; `make setup` installs it)"
        ) from None
    return utils


def validate_builtin(
    obj: Mapping[str, Any], version: str = KUBERNETES_VERSION
) -> list[Problem] | None:
    """Problems of a built-in object against Kubernetes ``version``'s schema, strictly.

    None when that version has no schema for the object's apiVersion and kind.
    """
    kv = _kubernetes_validate()
    try:
        kv.validate(dict(obj), version, strict=True)
    except kv.ValidationError as exc:
        return _schema_problems(object_id(obj), [exc])
    except kv.SchemaNotFoundError:
        return None
    except kv.VersionNotSupportedError:
        raise ValidatorError(
            f"kubernetes-validate {kv.__version__} has no schemas for Kubernetes {version}: "
            "upgrade it or choose another version"
        ) from None
    return []


def strict_schema(schema: Any) -> Any:
    """A CRD's openAPIV3Schema as JSON Schema that rejects unknown fields, like the API server."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if out.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


@functools.cache
def load_crd_schemas(schemas_dir: Path = SCHEMAS_DIR) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(apiVersion, kind): strict JSON Schema}`` from the CRDs vendored in ``schemas_dir``."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(schemas_dir.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                raise ValidatorError(f"{path}: expected CustomResourceDefinition documents")
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schemas[key] = strict_schema(version["schema"]["openAPIV3Schema"])
    return schemas


def validate_custom(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Problem]:
    """Problems of a custom resource against its CRD's strict schema, metadata included."""
    # ObjectMeta is checked like a built-in kind's: any kind with metadata will do as the host.
    host = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata", {})}
    problems = [
        Problem(object_id(obj), p.field, p.message)
        for p in validate_builtin(host) or []
        if p.field.startswith("metadata")
    ]
    validator = jsonschema.Draft4Validator(schema)
    errors = sorted(validator.iter_errors(dict(obj)), key=lambda e: list(map(str, e.absolute_path)))
    return problems + _schema_problems(object_id(obj), errors)


def validate_object(
    obj: Mapping[str, Any],
    *,
    version: str = KUBERNETES_VERSION,
    crd_schemas: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> list[Problem]:
    """Problems of one object: built-in schema, else vendored CRD schema, else unknown kind."""
    crds = load_crd_schemas() if crd_schemas is None else crd_schemas
    schema = crds.get((str(obj["apiVersion"]), str(obj["kind"])))
    if schema is not None:
        return validate_custom(obj, schema)
    builtin = validate_builtin(obj, version)
    if builtin is not None:
        return builtin
    return [
        Problem(
            object_id(obj),
            "apiVersion",
            f"no schema for {obj['apiVersion']} {obj['kind']} in Kubernetes {version} nor in "
            f"the vendored CRDs: add its CRD to gitops/schemas/",
        )
    ]


def validate_schemas(
    files: Mapping[str, str],
    *,
    version: str = KUBERNETES_VERSION,
    schemas_dir: Path = SCHEMAS_DIR,
) -> list[Problem]:
    """Problems of every object in ``files`` against its schema, strictly."""
    objects, problems = load_objects(files)
    crds = load_crd_schemas(schemas_dir)
    for obj in objects:
        problems += validate_object(obj, version=version, crd_schemas=crds)
    return problems


# --- checkov ---------------------------------------------------------------------------------


def find_checkov() -> str:
    """The checkov of the project's own virtualenv, else PATH's."""
    if CHECKOV.is_file():
        return str(CHECKOV)
    found = shutil.which("checkov")
    if found is None:
        raise ValidatorError("checkov is not installed: run `make setup` (.venv-checkov)")
    return found


def _checkov_object(resource: str) -> str:
    # checkov names a resource Kind.namespace.name; names may hold dots, kinds never do.
    parts = resource.split(".", 2)
    return "/".join(parts) if len(parts) == 3 else resource


def _checkov_field(result: Mapping[str, Any]) -> str:
    keys = (result.get("check_result") or {}).get("evaluated_keys") or []
    if not keys or keys == ["resource_type"]:
        return ""
    parts: list[Any] = []
    for part in str(keys[0]).split("/"):
        parts.append(int(part[1:-1]) if part.startswith("[") and part.endswith("]") else part)
    return field_path(parts)


def parse_checkov(report: Any) -> list[Problem]:
    """The failed checks and parse errors of checkov's JSON report, as problems."""
    reports = report if isinstance(report, list) else [report]
    problems: list[Problem] = []
    for rep in reports:
        results = rep.get("results") if isinstance(rep, Mapping) else None
        if not results:
            continue  # checkov's report of a folder with nothing to check has no results
        for failed in results.get("failed_checks", []):
            problems.append(
                Problem(
                    _checkov_object(str(failed.get("resource", "?"))),
                    _checkov_field(failed),
                    f"{failed.get('check_id')}: {failed.get('check_name')} (checkov; if "
                    "deliberate, annotate the source object with checkov.io/skipN: ID=reason)",
                )
            )
        for path in results.get("parsing_errors", []):
            problems.append(Problem(Path(str(path)).name, "", "checkov could not parse the file"))
    return sorted(problems)


def run_checkov(files: Mapping[str, str], *, checkov: str | None = None) -> list[Problem]:
    """Problems checkov (framework kubernetes, offline) finds in the rendered folder."""
    tool = checkov or find_checkov()
    with tempfile.TemporaryDirectory(prefix="inferops-checkov-") as tmp:
        root = Path(tmp).resolve()
        for name, text in files.items():
            path = root / name
            if root not in path.resolve().parents:
                raise ValidatorError(f"{name}: a rendered file must stay inside its folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        argv = [tool, "-d", tmp, "--framework", "kubernetes", "--skip-download", "-o", "json"]
        # Offline: without BC_SKIP_MAPPING checkov asks its platform for the check mapping.
        env = dict(os.environ, BC_SKIP_MAPPING="TRUE")
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=CHECKOV_TIMEOUT_S,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ValidatorError(f"checkov could not run ({exc}): run `make setup`") from None
    # Exit 1 only says that checks failed; the report says which.
    if done.returncode not in (0, 1):
        raise ValidatorError(f"checkov failed (exit {done.returncode}): {done.stderr[-2000:]}")
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise ValidatorError(f"checkov printed no JSON report: {done.stdout[-500:]}") from None
    return parse_checkov(report)


def validate(
    files: Mapping[str, str],
    *,
    version: str = KUBERNETES_VERSION,
    schemas_dir: Path = SCHEMAS_DIR,
    checkov: bool = True,
) -> list[Problem]:
    """Every problem of a rendered folder: schemas (strict), then checkov."""
    problems = validate_schemas(files, version=version, schemas_dir=schemas_dir)
    if checkov:
        problems += run_checkov(files)
    return problems


def format_problems(problems: Sequence[Problem]) -> str:
    """The problems one a line, for a person to read."""
    return "\n".join(str(p) for p in problems)
