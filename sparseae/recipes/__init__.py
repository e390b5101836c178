"""Paper recipes as data: one YAML file per reproduction, run by ``sparseae train --recipe NAME``.

A recipe file (``sparseae/recipes/<name>.yaml``, shipped in the wheel) holds::

    name: cae_mnist                       # the file's stem
    title: one line on what is trained
    paper: {authors: ..., year: 2011, title: ...}
    table: Table 1 (CAE)                  # the table or figure reproduced
    metric: {name: classifier_error, label: test error, percent: true}
    published: 0.0114                     # in the metric's units (a fraction here), or null
    reference: "Rifai et al. 2011: 1.14%" # what the published figure is, printed beside ours
    measured: {value: 0.0139, note: ...}  # optional: our last full run (BENCHMARKS.md)
    seconds_2_cores: 276                  # expected time of the full recipe on 2 CPU cores
    quick_seconds_2_cores: 3              # and of the quick variant
    example: cae_mnist.yaml               # optional: an example config it starts from
    config: {model: ..., train: ...}      # run-config sections; each key replaces the example's
    quick: {train.max_epochs: 1, ...}     # ``section.key: value`` changes of the quick variant
    evaluate: {name: probe, data: ...}    # optional: an evaluation run after training (below)
    notes: free text                      # optional

``metric.name`` is a key of the run's ``summary.json`` ``metrics``. ``evaluate`` names an evaluation
registered in :mod:`sparseae.runs.evaluations` with its parameters; its metrics join the summary's
after training, and ``metric.name`` must then be one of them; ``evaluate.<param>`` keys of ``quick``
change its parameters in the quick variant. Files are strict: an unknown or missing key is a
:class:`~sparseae.errors.ConfigError` naming it, and both variants' run configs (and evaluations)
are validated when the file is read.
"""
from __future__ import annotations

import copy
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import RunConfig

__all__ = ["Recipe", "list_recipes", "get_recipe", "load_recipe", "recipe_files", "RECIPE_KEYS"]

#: Keys of a recipe file: required, then optional.
REQUIRED_KEYS = ("name", "title", "paper", "table", "metric", "published", "reference", "seconds_2_cores",
                 "quick_seconds_2_cores", "config", "quick")
OPTIONAL_KEYS = ("example", "measured", "evaluate", "notes")
RECIPE_KEYS = REQUIRED_KEYS + OPTIONAL_KEYS
PAPER_KEYS = ("authors", "year", "title")
METRIC_KEYS = ("name", "label", "percent")
MEASURED_KEYS = ("value", "note")
#: ``quick`` keys that change the evaluation's parameters rather than the run config.
EVALUATE_PREFIX = "evaluate."
#: Where a recipe's run goes unless ``--out`` (or ``output.dir``) says otherwise.
RUNS_FOLDER = Path("runs") / "recipes"


@dataclass(frozen=True)
class Recipe:
    """One reproduction: its paper, metric, published figure, and run config (full and quick)."""

    name: str
    title: str
    paper: dict[str, Any]
    table: str
    metric: dict[str, Any]
    published: float | None
    reference: str
    seconds_2_cores: float
    quick_seconds_2_cores: float
    config: dict[str, Any]
    quick: dict[str, Any]
    example: str | None = None
    measured: dict[str, Any] | None = None
    evaluate: dict[str, Any] | None = None
    notes: str | None = None
    source: str = field(default="", compare=False)

    @property
    def citation(self) -> str:
        """``Rifai et al. 2011``: the first author's surname, ``et al.`` when there are more."""
        authors = [part.strip() for part in self.paper["authors"].split(",") if part.strip()]
        first = authors[0].split()[-1] if authors else "?"
        more = " et al." if len(authors) > 2 else f" & {authors[1].split()[-1]}" if len(authors) == 2 else ""
        return f"{first}{more} {self.paper['year']}"

    def format_value(self, value: float | None) -> str:
        """A figure of this recipe's metric as printed: ``1.14%`` for a percentage, else 4 digits."""
        if value is None:
            return "-"
        return f"{100 * value:.2f}%" if self.metric.get("percent") else f"{value:.4g}"

    def run_config(self, *, quick: bool = False, assignments: Iterable[str] = ()) -> RunConfig:
        """The run config: the example (if any), the recipe's sections merged over it, the quick
        changes when ``quick``, ``output.dir`` defaulting to ``runs/recipes/<name>[_quick]``,
        then ``assignments`` (``section.key=value``); validated."""
        from ..config import RunConfig

        raw = _example_config(self.example) if self.example else {}
        raw = _merge(raw, self.config, self.source)
        raw.setdefault("output", {})
        raw["output"] = dict(raw["output"] or {}, dir=str(RUNS_FOLDER / (self.name + ("_quick" if quick else ""))))
        config = RunConfig.from_dict(raw, source=self.source, require_names=False)
        if quick:
            config = config.override({key: value for key, value in self.quick.items()
                                      if not key.startswith(EVALUATE_PREFIX)})
        return config.override(list(assignments)).validate()

    def evaluation(self, *, quick: bool = False, assignments: Iterable[str] = ()) -> dict[str, Any] | None:
        """The ``evaluate`` mapping (``{name, <params>}``) of the full or quick variant, then ``assignments``
        (``param=value``, the value read as YAML: ``depths=[1, 2]``); None without one."""
        import yaml

        if self.evaluate is None:
            return None
        changes = {key[len(EVALUATE_PREFIX):]: value for key, value in self.quick.items()
                   if key.startswith(EVALUATE_PREFIX)} if quick else {}
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or key.strip() == "name":
                raise ConfigError(f"an evaluation change reads param=value (not name), got {item!r}")
            changes[key.strip()] = yaml.safe_load(value)
        return {**copy.deepcopy(self.evaluate), **copy.deepcopy(changes)}

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (``sparseae recipes NAME --json``)."""
        return {"name": self.name, "title": self.title, "paper": dict(self.paper), "table": self.table,
                "metric": dict(self.metric), "published": self.published, "reference": self.reference,
                "measured": self.measured, "seconds_2_cores": self.seconds_2_cores,
                "quick_seconds_2_cores": self.quick_seconds_2_cores, "example": self.example,
                "config": copy.deepcopy(self.config), "quick": dict(self.quick),
                "evaluate": copy.deepcopy(self.evaluate), "notes": self.notes}


# ------------------------------------------------------------------------------------ reading

def recipe_files() -> dict[str, Path]:
    """Every shipped recipe file, by recipe name (the file's stem), sorted."""
    folder = resources.files("sparseae") / "recipes"
    return {Path(entry.name).stem: Path(str(entry))
            for entry in sorted(folder.iterdir(), key=lambda entry: entry.name)
            if entry.is_file() and entry.name.endswith(".yaml")}


def list_recipes() -> list[Recipe]:
    """Every shipped recipe, loaded and validated, sorted by name."""
    return [load_recipe(path) for path in recipe_files().values()]


def get_recipe(name: str) -> Recipe:
    """The shipped recipe ``name``; :class:`ConfigError` naming the known ones otherwise."""
    files = recipe_files()
    if not isinstance(name, str) or name not in files:
        raise ConfigError(f"unknown recipe {name!r}; known recipes: {', '.join(files)} (`sparseae recipes` lists them)")
    return load_recipe(files[name])


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate one recipe file (see the module docstring)."""
    from ..config import read_config_file

    path = Path(path)
    source = f"recipe {path.name}"
    raw = read_config_file(path)
    _check_keys(raw, REQUIRED_KEYS, OPTIONAL_KEYS, source)
    if raw["name"] != path.stem:
        raise ConfigError(f"{source}: name {raw['name']!r} differs from the file name {path.stem!r}")
    for key in ("name", "title", "table", "reference"):
        _check_text(raw[key], f"{source}: {key}")
    _check_keys(raw["paper"], PAPER_KEYS, (), f"{source}: paper")
    _check_text(raw["paper"]["authors"], f"{source}: paper.authors")
    _check_text(raw["paper"]["title"], f"{source}: paper.title")
    if not _is_integer(raw["paper"]["year"]):
        raise ConfigError(f"{source}: paper.year must be a year (an integer), got {raw['paper']['year']!r}")
    _check_keys(raw["metric"], ("name", "label"), ("percent",), f"{source}: metric")
    _check_text(raw["metric"]["name"], f"{source}: metric.name")
    _check_text(raw["metric"]["label"], f"{source}: metric.label")
    if not isinstance(raw["metric"].get("percent", False), bool):
        raise ConfigError(f"{source}: metric.percent must be true or false")
    if raw["published"] is not None:
        _check_real(raw["published"], f"{source}: published")
    for key in ("seconds_2_cores", "quick_seconds_2_cores"):
        _check_real(raw[key], f"{source}: {key}", positive=True)
    measured = raw.get("measured")
    if measured is not None:
        _check_keys(measured, MEASURED_KEYS, (), f"{source}: measured")
        _check_real(measured["value"], f"{source}: measured.value")
        _check_text(measured["note"], f"{source}: measured.note")
    for key in ("example", "notes"):
        if raw.get(key) is not None:
            _check_text(raw[key], f"{source}: {key}")
    if not isinstance(raw["config"], Mapping):
        raise ConfigError(f"{source}: config must be a mapping of run-config sections")
    if not isinstance(raw["quick"], Mapping) or not raw["quick"]:
        raise ConfigError(f"{source}: quick must be a non-empty mapping of section.key: value changes")
    for key in raw["quick"]:
        if not isinstance(key, str) or "." not in key:
            raise ConfigError(f"{source}: quick key {key!r} is not a section.key path (e.g. train.max_epochs)")
    recipe = Recipe(**{key: raw.get(key) for key in RECIPE_KEYS}, source=source)
    recipe.run_config()  # both variants are valid run configs
    recipe.run_config(quick=True)
    _check_evaluation(recipe, source)
    return recipe


def _check_evaluation(recipe: Recipe, source: str) -> None:
    """Both variants' ``evaluate`` name a registered evaluation with known parameters, and its
    metrics hold ``metric.name``; ``evaluate.`` quick keys need an ``evaluate``."""
    from ..runs.evaluations import check_evaluation

    if recipe.evaluate is None:
        keys = [key for key in recipe.quick if key.startswith(EVALUATE_PREFIX)]
        if keys:
            raise ConfigError(f"{source}: quick key {keys[0]!r} changes an evaluation, but the recipe has no evaluate")
        return
    evaluation, _ = check_evaluation(recipe.evaluate, f"{source}: evaluate")
    check_evaluation(recipe.evaluation(quick=True), f"{source}: evaluate (quick variant)")
    if recipe.metric["name"] not in evaluation.metrics:
        raise ConfigError(f"{source}: metric.name {recipe.metric['name']!r} is not computed by evaluation "
                          f"{evaluation.name!r} (it computes {', '.join(evaluation.metrics)})")


def _example_config(name: str) -> dict[str, Any]:
    from ..config import read_config_file

    folder = resources.files("sparseae") / "examples"
    entry = folder / name
    if not entry.is_file():
        known = sorted(item.name for item in folder.iterdir() if item.name.endswith((".yaml", ".toml")))
        raise ConfigError(f"unknown example config {name!r}; known: {', '.join(known)}")
    return read_config_file(Path(str(entry)))


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``base``'s sections with ``changes``' keys put in: a key's value replaces the example's whole
    (``pretrain.layer_params`` of another layer model does not inherit the example's parameters)."""
    merged = copy.deepcopy(dict(base))
    for section, values in changes.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: config.{section} must be a mapping of keys to values, got {values!r}")
        merged[section] = {**dict(merged.get(section) or {}), **copy.deepcopy(dict(values))}
    return merged


def _check_keys(values: Any, required: Iterable[str], optional: Iterable[str], where: str) -> None:
    required, optional = tuple(required), tuple(optional)
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(required + optional)}")
    unknown = [key for key in values if key not in required + optional]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known keys: "
                          f"{', '.join(required + optional)}")
    missing = [key for key in required if key not in values]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")


def _check_text(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a non-empty string, got {value!r}")


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_real(value: Any, where: str, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value \
            or (positive and value <= 0):
        raise ConfigError(f"{where} must be a {'positive ' if positive else ''}number, got {value!r}")
