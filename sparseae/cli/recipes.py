"""``sparseae recipes [NAME]`` and ``sparseae train --recipe NAME [--quick]``: the paper reproductions
shipped as data (:mod:`sparseae.recipes`), trained by the same code as ``sparseae train CONFIG``.

After the run, ours is printed beside the published figure and written into the run's
``summary.json``: a ``recipe`` entry, and ``recipe_published`` / ``recipe_reference`` among the
metrics (so ``sparseae report`` shows them next to the metric).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..recipes import EVALUATE_PREFIX, Recipe, get_recipe, list_recipes
from .output import Output, display_width


def _duration(seconds: float) -> str:
    """``3 s``, ``4.6 min``, ``1.0 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows of cells as aligned lines (display widths, so ρ̂ and × line up)."""
    widths = [max(display_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell + " " * (width - display_width(cell))
                      for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def command_recipes(args: argparse.Namespace, out: Output) -> int:
    """``sparseae recipes [NAME]``: list every reproduction, or show one."""
    if args.name:
        recipe = get_recipe(args.name)
        _show(out, recipe)
        out.json(recipe.describe())
        return 0
    recipes = list_recipes()
    header = ("name", "paper", "table / figure", "published", "2 cores", "quick")
    rows = [(r.name, r.citation, r.table, r.format_value(r.published), _duration(r.seconds_2_cores),
             _duration(r.quick_seconds_2_cores)) for r in recipes]
    out.line(f"{len(recipes)} recipes (`sparseae recipes NAME` shows one; "
             "`sparseae train --recipe NAME [--quick]` runs it):")
    for line in _columns([header, *rows]):
        out.line("  " + line)
    out.json({"recipes": [recipe.describe() for recipe in recipes]})
    return 0


def _show(out: Output, recipe: Recipe) -> None:
    paper = recipe.paper
    rows = [("title", recipe.title), ("paper", f"{paper['authors']} ({paper['year']}). {paper['title']}"),
            ("table / figure", recipe.table), ("metric", f"{recipe.metric['label']} ({recipe.metric['name']})"),
            ("published", recipe.format_value(recipe.published)), ("reference", recipe.reference)]
    if recipe.measured:
        rows.append(("measured (ours)", f"{recipe.format_value(recipe.measured['value'])}: {recipe.measured['note']}"))
    rows += [("time on 2 CPU cores", _duration(recipe.seconds_2_cores)),
             ("quick variant", f"{_duration(recipe.quick_seconds_2_cores)}: "
                               + ", ".join(f"{key}={value}" for key, value in recipe.quick.items())),
             ("example config", recipe.example or "-")]
    if recipe.evaluate:
        shown = ", ".join(f"{key}={value}" for key, value in recipe.evaluate.items())
        rows.append(("evaluation after training", shown))
    if recipe.notes:
        rows.append(("notes", recipe.notes))
    out.table(rows, f"recipe {recipe.name}")
    out.line(f"Run it: sparseae train --recipe {recipe.name} [--quick] [--out DIR] [--set SECTION.KEY=VALUE ...]")


# ------------------------------------------------------------------------------- train --recipe

def add_train_options(train: argparse.ArgumentParser) -> None:
    """``--recipe NAME`` and ``--quick`` of ``sparseae train``."""
    train.add_argument("--recipe", metavar="NAME", help="train a paper recipe (see `sparseae recipes`) instead "
                                                        "of CONFIG; --set, --out... change it")
    train.add_argument("--quick", action="store_true", help="with --recipe: its quick variant (seconds)")


def uses_recipe(args: argparse.Namespace) -> bool:
    """Whether ``sparseae train`` was given ``--recipe`` (or ``--quick``, which needs it)."""
    return getattr(args, "recipe", None) is not None or bool(getattr(args, "quick", False))


def recipe_config(args: argparse.Namespace):
    """The run config of ``train --recipe NAME [--quick] [--set ...]`` (flags such as ``--out`` are
    applied by the train command as for any config)."""
    if args.recipe is None:
        raise ConfigError("--quick needs --recipe NAME: it selects a recipe's quick variant")
    given = [flag for flag, value in (("CONFIG", args.config), ("--model", args.model), ("--data", args.data))
             if value is not None]
    if given:
        raise ConfigError(f"--recipe gives the whole config: drop {', '.join(given)} (change keys with --set)")
    recipe = get_recipe(args.recipe)
    _evaluation_spec(recipe, args)  # a bad evaluate.* change fails now, not after the training
    return recipe.run_config(quick=args.quick, assignments=[item for item in args.set or ()
                                                           if not item.startswith(EVALUATE_PREFIX)])


def _evaluation_spec(recipe: Recipe, args: argparse.Namespace) -> dict[str, Any] | None:
    """The recipe's evaluation with the ``--set evaluate.PARAM=VALUE`` changes of ``args``, checked."""
    from ..runs.evaluations import check_evaluation

    changes = [item[len(EVALUATE_PREFIX):] for item in args.set or () if item.startswith(EVALUATE_PREFIX)]
    spec = recipe.evaluation(quick=bool(args.quick), assignments=changes)
    if spec is None:
        if changes:
            raise ConfigError(f"recipe {recipe.name!r} has no evaluation: --set {EVALUATE_PREFIX}{changes[0]} "
                              "has nothing to change")
        return None
    check_evaluation(spec, f"recipe {recipe.name}: evaluate")
    return spec


def report_recipe(out: Output, args: argparse.Namespace, summary: dict[str, Any]) -> dict[str, Any]:
    """Print ours beside the published figure and record both in the run's summary.json."""
    from ..io import write_json_atomic

    recipe = get_recipe(args.recipe)
    spec = _evaluation_spec(recipe, args)
    summary = _evaluate(out, spec, bool(args.quick), summary)
    name = recipe.metric["name"]
    ours = summary.get("metrics", {}).get(name)
    entry = {"name": recipe.name, "quick": bool(args.quick), "paper": dict(recipe.paper), "table": recipe.table,
             "metric": name, "label": recipe.metric["label"], "ours": ours, "published": recipe.published,
             "reference": recipe.reference}
    if spec is not None:
        entry["evaluate"] = spec  # as run: the recipe's, with the --set evaluate.* changes
    summary = {**summary, "recipe": entry}
    metrics = dict(summary.get("metrics", {}))
    if recipe.published is not None:
        metrics["recipe_published"] = recipe.published
    metrics["recipe_reference"] = f"{recipe.metric['label']}: {recipe.reference}"
    summary["metrics"] = metrics
    if summary.get("run_dir"):
        write_json_atomic(Path(summary["run_dir"]) / "summary.json", summary)
    variant = " (quick variant: not comparable)" if args.quick else ""
    shown = recipe.format_value(ours) if isinstance(ours, (int, float)) else "not computed"
    out.line(f"Recipe {recipe.name}{variant}: {recipe.metric['label']} ours {shown}, published "
             f"{recipe.format_value(recipe.published)} ({recipe.reference})")
    return summary


def _evaluate(out: Output, spec: dict[str, Any] | None, quick: bool, summary: dict[str, Any]) -> dict[str, Any]:
    """The recipe's evaluation ``spec`` (if any) on the finished run: its metrics join the summary's (and
    summary.json's, :func:`~sparseae.runs.evaluations.run_evaluation`), and are printed."""
    if spec is None or not summary.get("run_dir"):
        return summary
    from ..runs.evaluations import run_evaluation
    from ..runs.folder import lock_if_run_dir

    with lock_if_run_dir(Path(summary["run_dir"]), "sparseae recipe evaluation"):  # it writes summary.json
        metrics = run_evaluation(spec, summary["run_dir"], quick=quick)
    out.table(metrics.items(), f"evaluation {spec['name']}:")
    return {**summary, "metrics": {**summary.get("metrics", {}), **metrics}}


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """The ``recipes`` subcommand."""
    parser = commands.add_parser("recipes", parents=[common], help="list the paper reproductions",
                                 description="The paper reproductions shipped as data: name, paper, table, "
                                             "published figure, time on 2 CPU cores, quick variant. Run one "
                                             "with `sparseae train --recipe NAME [--quick]`.")
    parser.add_argument("name", metavar="NAME", nargs="?", help="one recipe: its paper, figures and config changes")
    parser.set_defaults(handler=command_recipes)
