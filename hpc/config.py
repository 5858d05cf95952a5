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


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """Load and validate a config YAML (default: the repository's ``config/config.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    return validate_config(_read_yaml_mapping(path), source=str(path))


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
    return spec
