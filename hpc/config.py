"""The one configuration: a YAML file validated against ``hpc/schemas/config.schema.yaml``.

The Snakefile validates the same file with ``snakemake.utils.validate`` against the same
schema, so the CLI and the workflow can never disagree about what a key means. Defaults
live in the schema and are filled in on load.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"
EXPERIMENT_SCHEMA_PATH = Path(__file__).parent / "schemas" / "experiment.schema.yaml"
# package data (a link to the repository's config/config.yaml, copied into wheels), so an
# installed package has its default configuration from any directory
DEFAULT_CONFIG_PATH = Path(__file__).parent / "defaults" / "config.yaml"


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid; message names file and key."""


def _with_defaults(validator_class: type) -> type:
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def validate_config(config: dict[str, Any], source: str = "<config>",
                    schema_path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """Return a deep copy of ``config`` with defaults filled in; raise ConfigError if invalid."""
    schema = load_schema(schema_path)
    config = copy.deepcopy(config)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{source}: {'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}" for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    return config


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def coerce_override_strings(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Turn strings where the schema wants a number, boolean or null into that type (a copy).

    Snakemake parses the nested values of ``--config key={a: 1}`` with YAML's base loader,
    which leaves every leaf a string ('1'); without this, ``--config "dataset={image_size:
    64}"`` would fail validation. Only strings at places that do not accept strings are
    converted, by YAML's safe loader.
    """
    schema = load_schema() if schema is None else schema

    def walk(value: Any, sub: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            props = sub.get("properties", {})
            return {k: walk(v, props.get(k, {})) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, sub.get("items", {})) for v in value]
        types = sub.get("type")
        types = [types] if isinstance(types, str) else (types or [])
        if isinstance(value, str) and types and "string" not in types:
            try:
                return yaml.safe_load(value)
            except yaml.YAMLError:
                return value
        return value

    return walk(copy.deepcopy(config), schema)


def resolve_paths(config: dict[str, Any]) -> dict[str, Any]:
    """Fill the paths that default to places under ``results_dir`` (a copy is returned).

    ``dataset.output`` and ``dataset.records`` are null by default, meaning
    ``<results_dir>/dataset/slices.h5`` and ``<results_dir>/records/dataset.jsonl``, so that
    one ``results_dir`` override moves every output the suite writes. ``records: ''``
    (no record) is kept.
    """
    config = copy.deepcopy(config)
    results = Path(config.get("results_dir") or "results")
    dataset = config.setdefault("dataset", {})
    if dataset.get("output") is None:
        dataset["output"] = str(results / "dataset" / "slices.h5")
    if dataset.get("records") is None:
        dataset["records"] = str(results / "records" / "dataset.jsonl")
    return config


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """Load and validate a config YAML (default: the repository's ``config/config.yaml``);
    defaults and the derived paths (:func:`resolve_paths`) filled in."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    return resolve_paths(validate_config(_read_yaml_mapping(path), source=str(path)))


def write_merged_config(config: dict[str, Any], directory: str | Path,
                        sections: tuple[str, ...] = ()) -> Path:
    """Write the validated, merged configuration a workflow run uses, for its commands.

    Snakemake merges ``config/config.yaml``, every ``--configfile`` and ``--config
    key=value`` into one ``config`` dict; the commands the rules run must read exactly
    that, not one of the files. This writes it (validated, defaults and derived paths
    filled) to ``directory/config-<sections>-<hash>.yaml`` and returns the path. With
    ``sections``, only ``results_dir`` and those top-level sections are written, and the
    name's hash covers only them: a rule that passes the file as a ``params:`` entry is
    then rerun when *its* sections change and not when, say, the experiments list does.
    The name is content-addressed, so a later run with other overrides never rewrites a
    file that jobs of an earlier run still read; an existing file is left as it is.
    """
    import hashlib

    from hpc.atomic import atomic_write_text

    full = resolve_paths(validate_config(config, source="merged workflow config"))
    part = {k: v for k, v in full.items() if not sections or k == "results_dir" or k in sections}
    text = yaml.safe_dump(part, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = Path(directory) / f"config-{'-'.join(sections) or 'all'}-{digest}.yaml"
    if not path.exists():
        header = ("# Written by the workflow (hpc.config.write_merged_config): the merged, validated\n"
                  "# configuration of a run" + (f", sections {', '.join(sections)}" if sections else "")
                  + ". Do not edit; change config/config.yaml or pass --configfile/--config.\n")
        atomic_write_text(path, header + text)
    return path


def load_experiment(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load and validate one experiments/*.yaml definition (defaults filled in).

    ``kind``: the experiment kind the caller runs; another kind is a ConfigError, so a
    training file handed to ``hpc scale`` fails with a message naming the file.
    """
    path = Path(path)
    spec = validate_config(_read_yaml_mapping(path), source=str(path),
                           schema_path=EXPERIMENT_SCHEMA_PATH)
    if kind is not None and spec["kind"] != kind:
        raise ConfigError(f"{path}: kind is {spec['kind']!r}, expected {kind!r}")
    if spec["kind"] == "compression":  # combinations the schema cannot state clearly (arch x method)
        from hpc.compress.experiment import check_experiment
        check_experiment(spec, str(path))
    return spec
