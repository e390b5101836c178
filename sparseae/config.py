"""Run configs: what to train, on which data, how, and where the results go.

A run config has these sections, each a mapping::

    model:    {name: sparse_ae_kl, n_components: 25, <model parameters>...}
    data:     {name: patches, <dataset options>..., normalize: none|l2|center_l2,
               test: {<options of the evaluation set>}}
    pretrain: {<TrainConfig fields>, layer_model, layer_params}   (optional: see below)
    train:    {<TrainConfig fields>: optimizer, learning_rate, max_epochs, lbfgs_max_iter, ...}
    output:   {dir: runs/demo, plots: true}

``data.normalize: l2`` scales every sample (of the training and the evaluation set) to unit L2
norm; ``center_l2`` first subtracts the training set's mean (the usual input normalization of
SAEs on model activations). A model with a classifier head (e.g. ``drsae``) trains on the dataset's labels; a non-empty
``pretrain`` section first trains it without labels, with the ``train`` settings changed by the
section's keys (``pretrain: {max_epochs: 100}``). For a deep model (``deep_autoencoder``,
``mlp_classifier``) the ``pretrain`` section means greedy layer-wise pre-training: each layer is
trained as the preset ``layer_model`` (default ``autoencoder``) with ``layer_params`` (e.g.
``{corruption: masking:0.25}``), then the whole stack is fine-tuned. ``layer_params`` may also be a
list with one mapping per layer (``[{corruption: masking:0.1}, {corruption: masking:0.2}, ...]``;
its length must be the number of layers: ``model.hidden`` plus the code layer).

It is read from YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON (``.json``), chosen by the
file's extension, or built from command-line flags, and amended by ``section.key=value``
assignments (the value is parsed as a YAML scalar: ``1e-4`` is a number, ``true`` a boolean,
``null`` None). Configs are strict: an unknown section, or an unknown key in ``train`` or
``output``, is a :class:`~sparseae.errors.ConfigError` that names it and lists the known ones.
Model parameters are checked by :func:`~sparseae.models.create_model` and dataset options by
:func:`~sparseae.data.load_dataset`, each of which names an unknown key the same way.
Reading a config checks no fact of the machine: ``train.device: cuda`` reads on a machine without
CUDA (whether it can train there is checked when training starts,
:meth:`~sparseae.train.TrainConfig.training_device`).

``data.test`` (optional) describes the evaluation set: its keys replace the options of the
training set (``test: {split: test}`` is MNIST's test split), or, when it has a ``name``, it is a
dataset of its own (``test: {name: array, path: held_out.npy}``).
"""
from __future__ import annotations

import copy
import inspect
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .data.datasets import NORMALIZATIONS
from .errors import ConfigError
from .files import write_text_atomic
from .train.config import RENAMED_OPTIONS, TrainConfig, check_renamed

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "SECTIONS", "OUTPUT_DEFAULTS", "DEFAULT_N_COMPONENTS", "DEMO_CONFIG", "QUICK_DEMO_OVERRIDES",
    "RunConfig", "load_config", "parse_assignment", "parse_scalar", "read_config_file", "read_run_config",
    "written_by",
]

#: The sections of a run config, in the order they are written.
SECTIONS = ("model", "data", "pretrain", "train", "output")
#: Keys of the ``pretrain`` section that describe the layers of greedy pre-training.
STACK_KEYS = ("layer_model", "layer_params")
#: ``data.normalize`` values: per-sample scaling applied after loading.
#: Keys of the ``model`` section besides the model's own parameters.
MODEL_KEYS = ("name", "n_components")
#: ``output`` keys and their defaults (``dir`` None → ``runs/<model>_<data>``).
OUTPUT_DEFAULTS: dict[str, Any] = {"dir": None, "plots": True}
#: ``model.n_components`` when a config does not give it.
DEFAULT_N_COMPONENTS = 64
#: Extensions read by :func:`read_config_file`.
CONFIG_SUFFIXES = (".yaml", ".yml", ".toml", ".json")

#: The UFLDL sparse autoencoder exercise (``sparseae demo``; also ``examples/ufldl_patches.yaml``):
#: 10,000 whitened 8×8 natural-image patches, 25 sigmoid hidden units, ρ = 0.01, β = 3, λ = 1e-4,
#: 400 iterations of L-BFGS on the full batch, in float64 as in the exercise (in float32 the line
#: search stalls on the plateau where every unit is off, and the filters stay noise).
DEMO_CONFIG: dict[str, dict[str, Any]] = {
    "model": {"name": "sparse_ae_kl", "n_components": 25, "sparsity_target": 0.01,
              "sparsity_weight": 3.0, "weight_decay": 1e-4, "activation": "sigmoid",
              "decoder": "sigmoid"},
    "data": {"name": "patches", "n_patches": 10000, "patch_size": 8, "whitening": "1/f",
             "downsample": 3, "random_state": 0},
    "train": {"optimizer": "lbfgs", "learning_rate": 1.0, "lbfgs_max_iter": 400,
              "lbfgs_iter_per_epoch": 50, "dtype": "float64", "random_state": 0},
    "output": {"dir": "runs/demo", "plots": True},
}
#: What ``sparseae demo --quick`` changes: fewer patches and iterations (for tests and a first look).
QUICK_DEMO_OVERRIDES: dict[str, Any] = {"data.n_patches": 2000, "train.lbfgs_max_iter": 40,
                                        "train.lbfgs_iter_per_epoch": 20}


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading ``1e-4`` and ``3E5`` as floats (YAML 1.2 does;
    PyYAML's YAML 1.1 resolver wants a dot in the mantissa and would return the string), and
    refusing a key given twice in one mapping (PyYAML keeps the last: the first would be ignored
    silently)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *defaults" then overriding keys is how YAML merges, not a repeat
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # an unhashable key: PyYAML's own error says so
                if repeated:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, f"found the key {key!r} twice",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_FLOAT_PATTERN = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_Loader.yaml_implicit_resolvers = {key: list(value)
                                   for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_PATTERN, list("-+0123456789."))


def parse_scalar(text: str) -> Any:
    """``text`` read as a YAML scalar: ``"3"`` → 3, ``"1e-4"`` → 0.0001, ``"true"`` → True,
    ``"null"`` or ``""`` → None, ``"[8, 8]"`` → [8, 8]; anything YAML cannot read stays a string."""
    try:
        return yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, RecursionError):
        return text


def parse_assignment(assignment: str) -> tuple[list[str], Any]:
    """Split ``"section.key=value"`` (or ``"data.test.split=test"``) into (path, parsed value)."""
    name, sep, text = assignment.partition("=")
    path = name.strip().split(".")
    if not sep or len(path) < 2 or not all(path):
        raise ConfigError(f"--set expects section.key=value (e.g. train.max_epochs=5), got {assignment!r}; "
                          f"sections: {', '.join(SECTIONS)}")
    return path, parse_scalar(text.strip())


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML, TOML or JSON file (by extension) into a dict; errors are :class:`ConfigError`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise ConfigError(f"config file {path} has extension {suffix or '(none)'!r}; use one of "
                          f"{', '.join(CONFIG_SUFFIXES)}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        if suffix == ".toml":
            raw = tomllib.loads(text)
        elif suffix == ".json":
            raw = json.loads(text, object_pairs_hook=_json_object(path))
        else:
            raw = yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"config file {path} is not valid {suffix.lstrip('.').upper()}: {detail}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply to be a run config") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections "
                          f"({', '.join(SECTIONS)}), got {type(raw).__name__}")
    return raw


def _json_object(path: Path):
    """``json.loads``'s ``object_pairs_hook``: a dict, or :class:`ConfigError` for a key given twice."""
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        built: dict[str, Any] = {}
        for key, value in pairs:
            if key in built:
                raise ConfigError(f"config file {path} is not valid JSON: the key {key!r} is given twice "
                                  "in one object")
            built[key] = value
        return built
    return build


def _check_names(values: Mapping[Any, Any], where: str) -> None:
    """:class:`ConfigError` unless every key of ``values`` is a name (a string): YAML also reads
    ``1:`` or ``~:`` as keys, which no option has."""
    for key in values:
        if not isinstance(key, str):
            raise ConfigError(f"{where} has the key {key!r}, which is not a name: keys are option names "
                              "(strings)")


def _check_keys(values: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    unknown = [key for key in values if key not in known]
    if unknown:
        raise ConfigError(f"unknown key {where}.{unknown[0]!s} in the config; known keys of {where}: "
                          f"{', '.join(known)}")


@dataclass
class RunConfig:
    """A validated run config: four plain dicts (see the module docstring for their keys).

    Build one with :meth:`from_dict` or :func:`load_config`; amend it with :meth:`with_model`,
    :meth:`with_data` and :meth:`override`, each of which returns a new validated config.
    """

    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    pretrain: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "config",
                  require_names: bool = True) -> RunConfig:
        """Check and copy a ``{section: {key: value}}`` mapping (missing sections are empty).

        ``require_names=False`` lets ``model.name``/``data.name`` be missing for now (flags may
        still supply them); :meth:`validate` requires them.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source} must be a mapping of sections ({', '.join(SECTIONS)})")
        unknown = [key for key in raw if key not in SECTIONS]
        if unknown:
            raise ConfigError(f"unknown section {unknown[0]!r} in {source}; known sections: "
                              f"{', '.join(SECTIONS)}")
        sections = {}
        for name in SECTIONS:
            value = raw.get(name)
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise ConfigError(f"section {name!r} of {source} must be a mapping of keys to values, "
                                  f"got {value!r}")
            _check_names(value, f"section {name!r} of {source}")
            try:
                sections[name] = copy.deepcopy(dict(value))
            except RecursionError:
                raise ConfigError(f"section {name!r} of {source} is nested too deeply") from None
        config = cls(**sections)
        return config.validate(require_names=require_names)

    def validate(self, *, require_names: bool = True) -> RunConfig:
        """Check every section (see the module docstring); returns ``self``."""
        from .data import DATASETS
        from .models import MODELS

        for section in SECTIONS:
            _check_names(getattr(self, section), section)
        for section, flag in (("model", "--model"), ("data", "--data")):
            values = getattr(self, section)
            name = values.get("name")
            if name is None:
                if require_names:
                    raise ConfigError(f"{section}.name is missing: give it in the config file or with {flag}")
                continue
            if not isinstance(name, str):
                raise ConfigError(f"{section}.name must be a string, got {name!r}")
            (MODELS if section == "model" else DATASETS).get(name)  # unknown name → ConfigError
        if self.model.get("penalties") is not None:
            from .nn.penalties import check_penalty_list

            check_penalty_list(self.model["penalties"])  # unknown name or parameter → ConfigError
        self.model.setdefault("n_components", DEFAULT_N_COMPONENTS)
        n_components = self.model["n_components"]
        if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
            raise ConfigError(f"model.n_components must be a positive integer, got {n_components!r}")
        test = self.data.get("test")
        if test is not None:
            if not isinstance(test, Mapping):
                raise ConfigError(f"data.test must be a mapping of dataset options (e.g. {{split: test}}), "
                                  f"got {test!r}")
            _check_names(test, "data.test")
            if "test" in test:
                raise ConfigError("data.test cannot hold another 'test'")
        if self.data.get("normalize", "none") not in NORMALIZATIONS:
            raise ConfigError(f"data.normalize must be one of {', '.join(NORMALIZATIONS)}, "
                              f"got {self.data['normalize']!r}")
        check_renamed(self.train, "train.")
        _check_keys(self.train, [f.name for f in fields(TrainConfig)], "train")
        TrainConfig.from_dict(self.train)
        check_renamed(self.pretrain, "pretrain.")
        _check_keys(self.pretrain, [f.name for f in fields(TrainConfig)] + list(STACK_KEYS), "pretrain")
        self._check_layer_params()
        if not isinstance(self.pretrain.get("layer_model", "autoencoder"), str):
            raise ConfigError(f"pretrain.layer_model must be a model name, got {self.pretrain['layer_model']!r}")
        if self.pretrain:
            self.pretrain_config()
        _check_keys(self.output, list(OUTPUT_DEFAULTS), "output")
        directory = self.output.get("dir")
        if directory is not None and (not isinstance(directory, str) or not directory):
            raise ConfigError(f"output.dir must be a folder path (a string), got {directory!r}")
        plots = self.output.get("plots", True)
        if not isinstance(plots, bool):
            raise ConfigError(f"output.plots must be true or false, got {plots!r}")
        return self

    def _check_layer_params(self) -> None:
        """``pretrain.layer_params``: a mapping for every layer, or a list of mappings, one per
        layer of the deep model (its ``hidden`` sizes plus the code layer)."""
        layer_params = self.pretrain.get("layer_params", {})
        if isinstance(layer_params, Mapping):
            _check_names(layer_params, "pretrain.layer_params")
            return
        if not isinstance(layer_params, list):
            raise ConfigError(f"pretrain.layer_params must be a mapping of the layer preset's parameters, or a "
                              f"list of them (one per layer), got {layer_params!r}")
        for k, entry in enumerate(layer_params):
            if not isinstance(entry, Mapping):
                raise ConfigError(f"pretrain.layer_params[{k}] must be a mapping of the layer preset's "
                                  f"parameters, got {entry!r}")
            _check_names(entry, f"pretrain.layer_params[{k}]")
        n_layers = self._n_deep_layers()
        if n_layers is not None and len(layer_params) != n_layers:
            raise ConfigError(f"pretrain.layer_params lists {len(layer_params)} layers' parameters but "
                              f"{self.model_name} has {n_layers} layers (model.hidden plus the code layer): "
                              "give one mapping per layer, or one mapping for all")

    def _n_deep_layers(self) -> int | None:
        """Encoder layers of a deep model (``len(hidden) + 1``); None when the model takes no
        ``hidden`` sizes or they cannot be read here (the model builder checks them)."""
        from .models import MODELS

        name = self.model.get("name")
        if not isinstance(name, str) or name not in MODELS:
            return None
        parameter = inspect.signature(MODELS.get(name)).parameters.get("hidden")
        if parameter is None:
            return None
        hidden = self.model.get("hidden", parameter.default)
        if hidden is inspect.Parameter.empty or not isinstance(hidden, (list, tuple)):
            return None
        return len(hidden) + 1

    # ------------------------------------------------------------------------------- accessors

    @property
    def model_name(self) -> str:
        return self.model["name"]

    @property
    def n_components(self) -> int:
        return self.model["n_components"]

    @property
    def model_params(self) -> dict[str, Any]:
        """The model's own parameters (everything in ``model`` but ``name`` and ``n_components``)."""
        return {k: v for k, v in self.model.items() if k not in MODEL_KEYS}

    @property
    def data_name(self) -> str:
        return self.data["name"]

    @property
    def data_options(self) -> dict[str, Any]:
        """Options of the training set (``data`` without ``name``, ``normalize`` and ``test``)."""
        return {k: v for k, v in self.data.items() if k not in ("name", "test", "normalize")}

    @property
    def normalize(self) -> str:
        """``data.normalize``: ``none`` or ``l2`` (unit-norm samples)."""
        return self.data.get("normalize", "none")

    def test_data_spec(self) -> tuple[str, dict[str, Any]] | None:
        """(name, options) of the evaluation set, or None when ``data.test`` is not given."""
        test = self.data.get("test")
        if test is None:
            return None
        test = dict(test)
        if "name" in test:
            return test.pop("name"), test
        return self.data_name, {**self.data_options, **test}

    def train_config(self, **changes: Any) -> TrainConfig:
        """The ``train`` section as a validated :class:`TrainConfig` (``changes`` applied on top)."""
        return TrainConfig.from_dict({**self.train, **changes})

    def pretrain_config(self, **changes: Any) -> TrainConfig | None:
        """The unsupervised phase: ``train`` changed by the ``pretrain`` section (None when it is empty).
        Early stopping and the monitored term stay those of the loss."""
        if not self.pretrain:
            return None
        own = {k: v for k, v in self.pretrain.items() if k not in STACK_KEYS}
        return TrainConfig.from_dict({**self.train, "n_iter_no_change": None, "monitor": "loss",
                                      **own, **changes})

    @property
    def layer_spec(self) -> tuple[str, dict[str, Any] | list[dict[str, Any]]]:
        """(preset, parameters) the layers of a deep model are pre-trained as: the parameters are
        one dict for every layer, or a list of dicts, one per layer."""
        params = self.pretrain.get("layer_params", {})
        params = [dict(entry) for entry in params] if isinstance(params, list) else dict(params)
        return self.pretrain.get("layer_model", "autoencoder"), params

    @property
    def output_dir(self) -> Path:
        """``output.dir``, or ``runs/<model>_<data>`` when not given."""
        directory = self.output.get("dir")
        return Path(directory) if directory else Path("runs") / f"{self.model_name}_{self.data_name}"

    @property
    def plots(self) -> bool:
        return bool(self.output.get("plots", True))

    # -------------------------------------------------------------------------------- changes

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """A deep copy as ``{section: {key: value}}``."""
        return copy.deepcopy({name: getattr(self, name) for name in SECTIONS})

    def with_model(self, name: str) -> RunConfig:
        """Use model ``name``; the other model parameters are dropped when the name changes
        (they belong to the old model), ``n_components`` is kept."""
        raw = self.to_dict()
        if raw["model"].get("name") != name:
            raw["model"] = {"name": name, **({"n_components": raw["model"]["n_components"]}
                                             if "n_components" in raw["model"] else {})}
        return RunConfig.from_dict(raw, require_names=False)

    def with_data(self, name: str) -> RunConfig:
        """Use dataset ``name``; its options (and ``test``) are dropped when the name changes."""
        raw = self.to_dict()
        if raw["data"].get("name") != name:
            raw["data"] = {"name": name}
        return RunConfig.from_dict(raw, require_names=False)

    def override(self, assignments: Iterable[str] | Mapping[str, Any]) -> RunConfig:
        """Apply ``section.key=value`` strings (or a ``{"section.key": value}`` mapping).

        Deeper paths set nested keys (``data.test.split=test``). The result is validated.
        """
        raw = self.to_dict()
        items = (assignments.items() if isinstance(assignments, Mapping)
                 else (parse_assignment(text) for text in assignments))
        for path, value in items:
            if isinstance(path, str):
                path = path.split(".")
            if path[0] not in SECTIONS:
                raise ConfigError(f"unknown section {path[0]!r} in --set {'.'.join(path)}; known sections: "
                                  f"{', '.join(SECTIONS)}")
            target = raw[path[0]]
            for key in path[1:-1]:
                child = target.get(key)
                if child is None:
                    child = target[key] = {}
                if not isinstance(child, dict):
                    raise ConfigError(f"cannot set {'.'.join(path)}: {key} is {child!r}, not a section")
                target = child
            target[path[-1]] = value
        return RunConfig.from_dict(raw, require_names=False)

    def resolved(self, model_spec: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """The config with every default written out, as saved to ``RUN_DIR/config.yaml``.

        ``model_spec``: the built model's ``spec`` (``{"name", "params"}``), whose parameters
        (defaults included) replace the ``model`` section's.
        """
        from .data import DATASETS

        raw = self.to_dict()
        if model_spec is not None:
            params = {k: v for k, v in model_spec["params"].items() if k != "n_features"}
            raw["model"] = {"name": model_spec["name"], "n_components": params.pop("n_components"),
                            **params}
        builder = DATASETS.get(self.data_name)
        defaults = {name: p.default for name, p in inspect.signature(builder).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        raw["data"] = {"name": self.data_name, **defaults, **self.data_options, "normalize": self.normalize,
                       **({"test": raw["data"]["test"]} if raw["data"].get("test") is not None else {})}
        raw["pretrain"] = dict(self.pretrain)
        raw["train"] = asdict(self.train_config())
        raw["output"] = {"dir": str(self.output_dir), "plots": self.plots}
        return raw

    def write(self, path: str | Path, model_spec: Mapping[str, Any] | None = None, *,
              command: str | None = None) -> Path:
        """Write :meth:`resolved` as YAML to ``path`` (atomically); returns the path. ``command``
        (e.g. ``"sparseae demo"``) is named in the comment on its first line (:func:`written_by`)."""
        path = Path(path)
        text = yaml.safe_dump(self.resolved(model_spec), sort_keys=False, default_flow_style=False)
        by = f" written by `{command}`" if command else ""
        return write_text_atomic(path, f"# sparseae run config{by} (resolved: every default written out)\n" + text)


def written_by(path: str | Path) -> str | None:
    """The command named on the first line of a run's ``config.yaml`` (:meth:`RunConfig.write`),
    e.g. ``"sparseae demo"``; None when it names none or cannot be read."""
    try:
        with open(path, encoding="utf-8") as file:
            first = file.readline()
    except (OSError, UnicodeDecodeError):
        return None
    found = re.match(r"# sparseae run config written by `([^`]+)`", first)
    return found[1] if found else None


def read_run_config(path: str | Path) -> dict[str, Any]:
    """A run folder's own ``config.yaml`` (:func:`read_config_file`), with the options an older
    sparseae wrote under names since changed moved to their new names (``train.max_iter`` →
    ``train.lbfgs_max_iter``, a model's ``max_iter`` → ``inference_max_iter``)."""
    from .models.base import migrate_params

    raw = read_config_file(path)
    for section in ("train", "pretrain"):
        values = raw.get(section)
        for old, new in RENAMED_OPTIONS.items():
            if isinstance(values, dict) and old in values and new not in values:
                values[new] = values.pop(old)
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("name"), str):
        raw["model"] = migrate_params(model["name"], model)
    return raw


def load_config(path: str | Path | None = None, *, model: str | None = None, data: str | None = None,
                assignments: Iterable[str] = (), base: Mapping[str, Any] | None = None) -> RunConfig:
    """The run config from ``path`` (or ``base``, or empty), then ``--model``/``--data``, then the
    ``--set`` ``assignments``; validated, with ``model.name`` and ``data.name`` required."""
    raw = read_config_file(path) if path is not None else dict(base or {})
    config = RunConfig.from_dict(raw, source=str(path) if path is not None else "config",
                                 require_names=False)
    if model is not None:
        config = config.with_model(model)
    if data is not None:
        config = config.with_data(data)
    config = config.override(list(assignments))
    return config.validate()
