"""Evaluations after training: what a paper recipe measures beyond :func:`~.metrics.compute_metrics`.

A recipe names one with ``evaluate: {name: NAME, <params>}`` (see :mod:`sparseae.recipes`). After
its run, :func:`run_evaluation` loads the finished run (model, config, folder) and calls the
registered function, whose metrics are merged into the run's ``summary.json`` ``metrics``. Register
one with::

    @register_evaluation("name", metrics=("metric_a", "metric_b"))
    def _name(run: FinishedRun, *, param: int = 3) -> dict[str, float]: ...

``metrics`` are the keys it returns (a recipe's ``metric.name`` is checked against them); every
keyword of the function is a parameter a recipe may set, those without a default must be set.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import RunConfig, read_run_config
from ..errors import ConfigError, DataError
from ..io import load_model
from ..validation import check_bool, check_number
from .data import load_datasets
from .folder import CONFIG_NAME, MODEL_NAME, SUMMARY_NAME

__all__ = ["EVALUATIONS", "Evaluation", "FinishedRun", "register_evaluation", "check_evaluation",
           "run_evaluation"]


@dataclass(frozen=True)
class FinishedRun:
    """A trained run as an evaluation sees it: its folder, model (eval mode, CPU), config, and
    whether it is a recipe's quick variant."""

    run_dir: Path
    model: torch.nn.Module
    config: RunConfig
    quick: bool = False


@dataclass(frozen=True)
class Evaluation:
    """A registered evaluation: ``function(run, **params) -> {metric: value}`` and its metric names."""

    name: str
    function: Callable[..., dict[str, float]]
    metrics: tuple[str, ...]

    @property
    def parameters(self) -> dict[str, inspect.Parameter]:
        """The keyword parameters a recipe may set (the function's, less ``run``)."""
        return {name: p for name, p in inspect.signature(self.function).parameters.items() if name != "run"}


#: Every registered evaluation, by name.
EVALUATIONS: dict[str, Evaluation] = {}


def register_evaluation(name: str, *, metrics: tuple[str, ...]) -> Callable:
    """Decorator: register ``function(run, **params)`` as the evaluation ``name`` returning ``metrics``."""
    def register(function: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
        if name in EVALUATIONS:
            raise ValueError(f"evaluation {name!r} is registered twice")
        EVALUATIONS[name] = Evaluation(name, function, tuple(metrics))
        return function
    return register


def check_evaluation(spec: Any, where: str) -> tuple[Evaluation, dict[str, Any]]:
    """The evaluation and parameters of a recipe's ``evaluate`` mapping (``{name: NAME, <params>}``);
    :class:`ConfigError` naming the problem (not a mapping, unknown name or parameter, a missing one)."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"{where} must be a mapping {{name: EVALUATION, <params>}}; known evaluations: "
                          f"{', '.join(sorted(EVALUATIONS))}")
    if spec["name"] not in EVALUATIONS:
        raise ConfigError(f"{where}: unknown evaluation {spec['name']!r}; known: {', '.join(sorted(EVALUATIONS))}")
    evaluation = EVALUATIONS[spec["name"]]
    params = {key: value for key, value in spec.items() if key != "name"}
    known = evaluation.parameters
    unknown = [str(key) for key in params if key not in known]
    if unknown:
        raise ConfigError(f"{where}: evaluation {evaluation.name!r} has no parameter {unknown[0]!r}; its "
                          f"parameters: {', '.join(known) or 'none'}")
    missing = [key for key, p in known.items() if p.default is inspect.Parameter.empty and key not in params]
    if missing:
        raise ConfigError(f"{where}: evaluation {evaluation.name!r} needs {', '.join(missing)}")
    return evaluation, params


def run_evaluation(spec: Mapping[str, Any], run_dir: str | Path, *, quick: bool = False) -> dict[str, float]:
    """Run the evaluation ``spec`` on the finished run in ``run_dir``; its metrics, also merged into
    the run's summary.json. A declared metric it did not return is an error (never silently absent)."""
    import json

    from ..io import write_json_atomic

    evaluation, params = check_evaluation(spec, "evaluate")
    run_dir = Path(run_dir)
    config = RunConfig.from_dict(read_run_config(run_dir / CONFIG_NAME), source=str(run_dir / CONFIG_NAME))
    model = load_model(run_dir / MODEL_NAME).eval()
    metrics = evaluation.function(FinishedRun(run_dir, model, config.validate(), quick), **params)
    missing = [name for name in evaluation.metrics if name not in metrics]
    if missing:
        raise RuntimeError(f"evaluation {evaluation.name!r} did not compute {', '.join(missing)}")
    summary_file = run_dir / SUMMARY_NAME
    if summary_file.exists():
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        summary["metrics"] = {**summary.get("metrics", {}), **metrics}
        write_json_atomic(summary_file, summary)
    return dict(metrics)


# ------------------------------------------------------------------------------ self-taught learning

@register_evaluation("probe", metrics=("transfer_accuracy", "transfer_raw_accuracy", "transfer_n_train",
                                       "transfer_n_test"))
def _probe(run: FinishedRun, *, data: Mapping[str, Any], test_fraction: float = 0.5, C: float = 1.0,
           seed: int = 0) -> dict[str, float]:
    """Self-taught learning (UFLDL): the run's model encodes *other* labelled data (``data``: changes
    of the run's data section, e.g. ``{classes: [0, 1, 2, 3, 4]}``), split ``test_fraction`` held out;
    a logistic regression on the codes against the same probe on the raw inputs
    (:func:`~sparseae.evaluate.probe.split_probe`, as ``sparseae probe --compare-raw``)."""
    from ..evaluate.probe import split_probe
    from .metrics import encode_decode

    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"evaluate.data must be a non-empty mapping of data-section changes, got {data!r}")
    config = run.config.override({f"data.{key}": value for key, value in data.items()})
    dataset, _ = load_datasets(config)
    if dataset.y is None:
        raise DataError(f"dataset {config.data_name!r} has no labels: the probe needs labelled data")
    X = np.asarray(dataset.X)
    codes, _ = encode_decode(run.model, X, decode=False)
    result = split_probe(codes, dataset.y, X_raw=X, test_fraction=test_fraction, C=C, random_state=seed)
    return {"transfer_accuracy": result["accuracy"], "transfer_raw_accuracy": result["raw_accuracy"],
            "transfer_n_train": result["n_train"], "transfer_n_test": result["n_test"]}


# -------------------------------------------------------------------------- tree-structured filters

@register_evaluation("tree_branches", metrics=("branch_ratio_level1", "branch_ratio_level2",
                                               "branch_ratio_relatives", "branch_p_level1", "branch_p_level2",
                                               "branch_p_relatives"))
def _tree_branches(run: FinishedRun, *, n_permutations: int = 1000, seed: int = 0) -> dict[str, float]:
    """Gregor, Szlam & LeCun 2011: units on one branch of the tree learn similar filters. The decoder
    filters' mean |cos| within / across the branches rooted at depth 1 and at depth 2, and between
    ancestor–descendant pairs / other pairs (:func:`~sparseae.evaluate.tree.tree_filter_ratios`),
    each with its permutation p-value (``n_permutations`` draws)."""
    from ..evaluate.tree import tree_filter_ratios
    from ..models.lateral_inhibition import LateralInhibition

    if not isinstance(run.model, LateralInhibition) or run.model.tree is None:
        raise ConfigError("evaluation 'tree_branches' needs a lateral_inhibition model with a tree of units")
    tree = run.model.tree
    filters = run.model.dictionary.detach().double().cpu().numpy().T
    check_number(n_permutations, "evaluate.n_permutations", low=1, integer=True)
    ratios = tree_filter_ratios(filters, tree, levels=(1, 2), n_permutations=n_permutations, random_state=seed)
    return {f"branch_{kind}_{name}": float(result[key]) for name, result in ratios.items()
            for kind, key in (("ratio", "ratio"), ("p", "p_value"))}


# ---------------------------------------------------------------------------------- CAE tangents

@register_evaluation("cae_tangents", metrics=("tangent_jacobian_norm", "tangent_saturated", "tangent_test_mse",
                                              "tangent_top_singular_value"))
def _cae_tangents(run: FinishedRun, *, n_eval: int = 2000, k: int = 6, draw: bool = True) -> dict[str, float]:
    """Rifai et al. 2011: a contractive code is locally flat and its Jacobian's leading right singular
    vectors are tangents of the digit manifold. On the first ``n_eval`` evaluation images: mean
    ‖J_f(x)‖_F, the saturated fraction of the codes and the reconstruction's mean squared error per
    pixel (:func:`~sparseae.evaluate.manifold.code_statistics`); at the first image of each class,
    the ``k`` leading tangents (mean top singular value), drawn into ``cae_tangents.png`` when ``draw``."""
    from ..evaluate.manifold import code_statistics, tangents_by_class

    check_number(n_eval, "evaluate.n_eval", low=1, integer=True)
    check_number(k, "evaluate.k", low=1, integer=True)
    check_bool(draw, "evaluate.draw")
    _, eval_set = load_datasets(run.config)
    stats = code_statistics(run.model, np.asarray(eval_set.X[:n_eval]))
    inputs, directions, singular_values = tangents_by_class(run.model, np.asarray(eval_set.X), eval_set.y, k=k)
    if draw and eval_set.image_shape:
        from ..viz.fields import save_tangent_images

        shape = f"{run.model.n_features}-{run.model.n_components}"
        save_tangent_images(run.run_dir / "cae_tangents.png", inputs.reshape(-1, *eval_set.image_shape), directions,
                            singular_values=singular_values,
                            title=f"{run.config.model_name} {shape}: test images and the leading right singular "
                                  "vectors of J_f(x) (tangents)")
    return {"tangent_jacobian_norm": stats["jacobian_norm"], "tangent_saturated": stats["saturated"],
            "tangent_test_mse": stats["mse"], "tangent_top_singular_value": float(singular_values[:, 0].mean())}


# ------------------------------------------------------------------------------ topographic maps

@register_evaluation("topographic_map", metrics=("topographic_ratio", "topographic_ratio_selective",
                                                 "topographic_selective_units", "topographic_mean_selectivity",
                                                 "topographic_pinwheels", "topographic_pinwheels_permuted"))
def _topographic_map(run: FinishedRun, *, selective: float = 0.3, n_permutations: int = 100) -> dict[str, float]:
    """Hyvärinen & Hoyer 2001, Kavukcuoglu et al. 2009: group sparsity over the windows of a grid of
    units arranges the filters topographically. The units' filters (in pixels: through the inverse
    of the ``whitened_patches`` whitening) on the model's ``groups`` grid: orientation difference of
    neighbours against permuted layouts, over all and over selective units, and pinwheels
    (:func:`~sparseae.evaluate.filters.topographic_map`)."""
    from ..data.datasets import pca_whitened_patches
    from ..evaluate.filters import topographic_map

    groups = run.model.spec["params"].get("groups")
    if not isinstance(groups, Mapping) or groups.get("kind") != "grid":
        raise ConfigError("evaluation 'topographic_map' needs a model whose groups are a grid "
                          "(model.groups: {kind: grid, height, width, window})")
    check_number(n_permutations, "evaluate.n_permutations", low=1, integer=True)
    filters = run.model.unit_filters().detach().double().cpu().numpy()
    options = run.config.data_options
    if run.config.data_name == "whitened_patches":
        _, whitening = pca_whitened_patches(**options)
        filters = filters @ whitening.inverse_components_
        side = options.get("patch_size", 8)
        shape = (side, side)
    else:
        shape = load_datasets(run.config)[0].image_shape
        if shape is None:
            raise ConfigError("evaluation 'topographic_map' needs image data (or whitened_patches)")
    result = topographic_map(filters, shape, groups["height"], groups["width"], selective=selective,
                             n_permutations=n_permutations)
    return {f"topographic_{key}": value for key, value in result.items()}


@register_evaluation("local_topographic_map", metrics=(
    "local_ratio", "local_ratio_selective", "local_selective_units", "local_pinwheels",
    "local_pinwheels_permuted", "local_ratio_whole", "local_mean_selectivity", "local_energy_concentration"))
def _local_topographic_map(run: FinishedRun, *, margin: int = 2, selective: float = 0.3,
                           n_permutations: int = 100) -> dict[str, float]:
    """Gregor & LeCun 2010: a locally connected sparse autoencoder (``local_sae``) with group sparsity
    over its sheet of units grows an orientation map over the image. Its units' own k×k decoder atoms
    in sheet order, on the non-wrapping sheet: ``local_*`` figures of the interior ``margin`` rows and
    columns in from each edge (edge units lie in fewer windows), ``local_ratio_whole`` of the whole
    sheet (:func:`~sparseae.evaluate.filters.topographic_map`), and the atoms' mean energy
    concentration (:func:`~sparseae.evaluate.filters.energy_concentration`; localized filters: high)."""
    from ..evaluate.filters import energy_concentration, topographic_map
    from ..models.local import LocalAutoencoder

    model = run.model
    if not isinstance(model, LocalAutoencoder):
        raise ConfigError("evaluation 'local_topographic_map' needs a local_sae model")
    check_number(margin, "evaluate.margin", low=0, integer=True)
    check_number(n_permutations, "evaluate.n_permutations", low=1, integer=True)
    kernel = int(model.spec["params"]["kernel_size"])
    atoms = model.sheet_atoms().double().cpu().numpy()
    if atoms.shape[1] != kernel * kernel:
        raise ConfigError(f"evaluation 'local_topographic_map' needs one-channel images; the atoms have "
                          f"{atoms.shape[1]} weights for {kernel}×{kernel} filters")
    height, width = model.sheet_shape
    if min(height, width) - 2 * margin < 2:
        raise ConfigError(f"evaluate.margin {margin} leaves less than 2×2 of the {height}×{width} sheet")
    inner = atoms.reshape(height, width, -1)[margin:height - margin, margin:width - margin]
    inner_shape = (height - 2 * margin, width - 2 * margin)
    figures = topographic_map(inner.reshape(-1, atoms.shape[1]), (kernel, kernel), *inner_shape,
                              selective=selective, n_permutations=n_permutations, toroidal=False)
    whole = topographic_map(atoms, (kernel, kernel), height, width, selective=selective,
                            n_permutations=n_permutations, toroidal=False)
    return {"local_ratio": figures["ratio"], "local_ratio_selective": figures["ratio_selective"],
            "local_selective_units": figures["selective_units"], "local_pinwheels": figures["pinwheels"],
            "local_pinwheels_permuted": figures["pinwheels_permuted"], "local_ratio_whole": whole["ratio"],
            "local_mean_selectivity": whole["mean_selectivity"],
            "local_energy_concentration": float(energy_concentration(atoms, (kernel, kernel)).mean())}


# -------------------------------------------------------------------------------- tree pruning

@register_evaluation("tree_pruning", metrics=("pruning_units_before", "pruning_units_after",
                                              "pruning_error_before", "pruning_error_after",
                                              "pruning_error_finetuned"))
def _tree_pruning(run: FinishedRun, *, threshold: float = 0.02, finetune_epochs: int = 3) -> dict[str, float]:
    """Train a larger tree than needed, then prune: the branches none of whose units is active on
    ``threshold`` of the training rows are removed (:func:`~sparseae.models.pruning.prune_tree_model`),
    and the smaller model is fine-tuned ``finetune_epochs`` epochs with the run's train settings.
    Units before / after, and the mean ‖x − Dz*‖² per row before, after pruning and after fine-tuning.
    The pruned, fine-tuned model is saved in ``pruned_model/``."""
    import dataclasses

    from ..io import save_model
    from ..models.pruning import prune_tree_model
    from ..train import train

    check_number(finetune_epochs, "evaluate.finetune_epochs", low=1, integer=True)
    train_set, _ = load_datasets(run.config)
    X = np.asarray(train_set.X)
    result = prune_tree_model(run.model, X, threshold)
    settings = dataclasses.replace(run.config.train_config(), max_epochs=finetune_epochs, progress=False)
    train(result.model, X, settings)
    result.model.eval()
    with torch.no_grad():
        x = torch.as_tensor(X, dtype=next(result.model.parameters()).dtype)
        tuned = float((result.model.decode(result.model.sparse_code(x)) - x).pow(2).sum(dim=1).mean())
    save_model(result.model, run.run_dir / "pruned_model", overwrite=True)
    return {"pruning_units_before": result.units_before, "pruning_units_after": result.units_after,
            "pruning_error_before": float(result.error_before), "pruning_error_after": float(result.error_after),
            "pruning_error_finetuned": tuned}


# ------------------------------------------------------------------------------- DAE score field

@register_evaluation("dae_score_field", metrics=("score_cosine", "score_cosine_untrained", "score_cosine_optimal",
                                                 "score_cosine_smoothed", "score_sigma2_fit", "score_test_points"))
def _dae_score_field(run: FinishedRun, *, n_test: int = 2000, draw: bool = True) -> dict[str, float]:
    """Alain & Bengio 2014: a DAE trained with small Gaussian corruption σ has r(x) − x ∝ σ²∇log p(x).
    On ``n_test`` fresh points of the run's ``spiral`` data (seed + 1), near the curve: the cosine of
    the field with the exact score, against the model at its initialization and the optimal denoiser
    (:func:`~sparseae.evaluate.manifold.score_field_figures`); the field drawn into
    ``dae_score_field.png`` when ``draw``. σ is read from the model's ``corruption`` (``gaussian:σ``)."""
    from ..data.spiral import make_spiral
    from ..evaluate.manifold import grid, reconstruction_field, score_field_figures
    from ..models import create_model

    check_number(n_test, "evaluate.n_test", low=1, integer=True)
    check_bool(draw, "evaluate.draw")
    corruption = run.model.spec["params"].get("corruption")
    if run.config.data_name != "spiral" or not (isinstance(corruption, str) and corruption.startswith("gaussian:")):
        raise ConfigError("evaluation 'dae_score_field' needs spiral data and a model with corruption gaussian:σ")
    sigma = float(corruption.split(":", 1)[1])
    options = {"noise": 0.05, "turns": 1.0, "random_state": 0, "n_centers": 2000,
               **{key: value for key, value in run.config.data_options.items() if key != "n_samples"}}
    X_test, centers = make_spiral(n_test, noise=options["noise"], turns=options["turns"],
                                  random_state=options["random_state"] + 1, n_centers=options["n_centers"])
    torch.manual_seed(run.config.train_config().random_state)  # as the run built it: its initialization
    untrained = create_model(run.config.model_name, run.model.n_features, run.config.n_components,
                             **run.config.model_params).eval()
    figures = score_field_figures(run.model, untrained, X_test, centers, options["noise"], sigma)
    if draw:
        from ..viz.fields import save_vector_field

        points = grid(-1.2, 1.2, 31)
        save_vector_field(run.run_dir / "dae_score_field.png", points, reconstruction_field(run.model, points),
                          np.asarray(load_datasets(run.config)[0].X), unit_arrows=True,
                          title=f"DAE r(x) − x, σ = {sigma:g} (cosine with ∇log p near the manifold: "
                                f"{figures['cosine']:.3f})")
    return {"score_cosine": figures["cosine"], "score_cosine_untrained": figures["untrained"],
            "score_cosine_optimal": figures["optimal"], "score_cosine_smoothed": figures["smoothed"],
            "score_sigma2_fit": figures["sigma2_fit"], "score_test_points": figures["test_points"]}


# ------------------------------------------------------------------------------ LISTA depth curve

@register_evaluation("lista_depth", metrics=("lista_error_deepest", "fista_equivalent_deepest", "lista_depth_deepest",
                                             "lista_error_shallowest", "lista_error_falls"))
def _lista_depth(run: FinishedRun, *, depths: list = (1, 2, 3, 5, 7, 10), data: Mapping[str, Any] | None = None,
                 skip: int = 0, n_train: int = 48000, n_val: int = 1000, n_test: int = 1000, epochs: int = 18,
                 patience: int = 4, batch_size: int = 100, lr: float = 0.1, clip: float = 1.0, max_iter: int = 500,
                 seed: int = 0, warm_start: bool = True, optimizer: str = "sgd", schedule: str = "one_cycle",
                 decay: float = 0.5, decay_patience: int = 1, min_lr_ratio: float = 0.01, scale_lr: bool = True,
                 untied: bool = False, layer_thresholds: bool = False) -> dict[str, float]:
    """Gregor & LeCun 2010: LISTA on the run's ``sparse_coding`` dictionary D and λ, trained at each T of ``depths``
    (each warm-started from the trained T − 1 when ``warm_start``) on the exact Lasso codes z* (LARS) of
    ``n_train`` rows, ``n_val`` for early stopping, by ``optimizer`` at ``lr``/T on the ``schedule`` (``decay``,
    ``decay_patience``, ``min_lr_ratio``, ``scale_lr`` False: ``lr`` at every T;
    :class:`~sparseae.evaluate.lista.LISTATraining`) (:func:`~sparseae.evaluate.lista.lista_depth_chain`);
    ``untied``/``layer_thresholds``: the ``lista`` model's options (a separate S_k per step, a θ_k per shrinkage;
    default Gregor & LeCun's shared weights). Per T also ``lista_epochs_T<T>`` and ``lista_best_epoch_T<T>``.
    Rows: the run's training set with ``data`` changes of its data section (e.g. ``{n_samples: null}``: all of
    it), less its first ``skip`` rows (the dictionary's own), shuffled by ``seed``; test rows: ``n_test`` of the
    evaluation set (``data.test``), else the next shuffled rows. Per T: ``lista_error_T<T>`` (mean‖z − z*‖² /
    mean‖z*‖² on the test rows) and ``fista_equivalent_T<T>`` (the FISTA iterations from zero that reach it;
    ``max_iter`` + 1 when ``max_iter`` do not); the deepest and shallowest T's, and ``lista_error_falls`` (1.0
    when the error falls strictly with T)."""
    from ..coding import fista
    from ..evaluate.lista import LISTATraining, exact_codes, lista_depth_chain, solver_curve
    from ..models import lista_from_dictionary

    if run.config.model_name != "sparse_coding" or run.model.spec["params"].get("nonnegative", False):
        raise ConfigError("evaluation 'lista_depth' needs a sparse_coding model with signed codes (its dictionary "
                          "and λ)")
    if not isinstance(depths, (list, tuple)) or not depths:
        raise ConfigError(f"evaluate.depths must be a non-empty list of LISTA depths T, got {depths!r}")
    for T in depths:
        check_number(T, "evaluate.depths[]", low=1, integer=True)
    for name, value in (("skip", skip), ("n_train", n_train), ("n_val", n_val), ("n_test", n_test),
                        ("max_iter", max_iter)):
        check_number(value, f"evaluate.{name}", low=0 if name == "skip" else 1, integer=True)
    check_bool(warm_start, "evaluate.warm_start")
    check_bool(untied, "evaluate.untied")
    check_bool(layer_thresholds, "evaluate.layer_thresholds")
    settings = LISTATraining(epochs=epochs, patience=patience, batch_size=batch_size, lr=lr, clip=clip, seed=seed,
                             optimizer=optimizer, schedule=schedule, scale_lr=scale_lr, decay=decay,
                             decay_patience=decay_patience, min_lr_ratio=min_lr_ratio)
    D = run.model.dictionary.detach().float().cpu()
    lam = float(run.model.spec["params"].get("sparsity_weight", 0.1))
    train, val, test = _lista_rows(run, data, skip, n_train, n_val, n_test, seed)
    L = lista_from_dictionary(D, lam, 1).lipschitz
    (X_train, Z_train), (X_val, Z_val), (X_test, Z_test) = ((X, exact_codes(X, D, lam)) for X in (train, val, test))
    curve = solver_curve(fista, X_test, D, lam, L, Z_test, max_iter)
    results, _ = lista_depth_chain(D, lam, depths, (X_train, Z_train), (X_val, Z_val), (X_test, Z_test),
                                   settings=settings.validate(), warm_start=warm_start,
                                   model_params={"untied": untied, "layer_thresholds": layer_thresholds})
    return _lista_metrics(results, curve, max_iter)


def _lista_metrics(results: list, curve: np.ndarray, max_iter: int) -> dict[str, float]:
    """The ``lista_depth`` metrics (see :func:`_lista_depth`) of the chain's per-depth ``results`` against
    FISTA's error ``curve`` (max_iter,)."""
    from ..evaluate.lista import iterations_to_match

    metrics: dict[str, float] = {}
    for result in results:
        reached = iterations_to_match(curve, result.trained)
        metrics[f"lista_error_T{result.T}"] = result.trained
        metrics[f"fista_equivalent_T{result.T}"] = float(reached if reached is not None else max_iter + 1)
        metrics[f"lista_epochs_T{result.T}"] = float(result.epochs)
        metrics[f"lista_best_epoch_T{result.T}"] = float(result.best_epoch)
    errors = [result.trained for result in results]
    deepest = results[-1].T
    return {**metrics, "lista_error_deepest": errors[-1],
            "fista_equivalent_deepest": metrics[f"fista_equivalent_T{deepest}"],
            "lista_depth_deepest": float(deepest), "lista_error_shallowest": errors[0],
            "lista_error_falls": float(bool(np.all(np.diff(errors) < 0)))}


def _lista_rows(run: FinishedRun, data: Mapping[str, Any] | None, skip: int, n_train: int, n_val: int, n_test: int,
                seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The LISTA training, validation and test inputs (n, n_features), float32 (see :func:`_lista_depth`)."""
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"evaluate.data must be a mapping of data-section changes, got {data!r}")
    config = run.config.override({f"data.{key}": value for key, value in (data or {}).items()})
    train_set, eval_set = load_datasets(config)
    rng = np.random.default_rng(seed)
    pool = np.asarray(train_set.X, dtype=np.float32)[skip:]
    pool = pool[rng.permutation(len(pool))]
    held_out = config.test_data_spec() is not None
    needed = n_train + n_val + (0 if held_out else n_test)
    if len(pool) < needed:
        raise DataError(f"evaluation 'lista_depth' needs {needed} training rows after skipping {skip}, the data "
                        f"has {len(pool)}")
    if held_out:
        test = np.asarray(eval_set.X, dtype=np.float32)
        if len(test) < n_test:
            raise DataError(f"evaluation 'lista_depth' needs {n_test} test rows, the evaluation set has {len(test)}")
        test = test[rng.permutation(len(test))[:n_test]]
    else:
        test = pool[n_train + n_val:needed]
    return tuple(torch.from_numpy(np.ascontiguousarray(part))
                 for part in (pool[:n_train], pool[n_train:n_train + n_val], test))


# ------------------------------------------------------------------------------ semantic hashing

@register_evaluation("hashing_vs_itq", metrics=("hashing_map", "hashing_precision_r2", "hashing_hit_r2", "itq_map",
                                                "itq_precision_r2", "itq_hit_r2", "hashing_map_gain",
                                                "hashing_queries"))
def _hashing_vs_itq(run: FinishedRun, *, n_per_class: int = 100, seed: int = 0, itq_iter: int = 50
                    ) -> dict[str, float]:
    """Semantic hashing (Salakhutdinov & Hinton 2009) on the run's labelled training set: ``n_per_class``
    random queries per class (:func:`~sparseae.retrieval.mnist_retrieval_split`, ``seed``; MNIST all:
    1,000 against the other 69,000), relevance = same label (labels only score). The run's bits
    (codes thresholded at 0.5) and ITQ's (``itq_iter`` iterations, fitted on the database) with
    as many bits: mAP of exhaustive Hamming ranking, precision within Hamming radius 2 (a query
    retrieving nothing counts 0) and the fraction of queries retrieving anything there
    (:mod:`sparseae.retrieval.metrics`); ``hashing_map_gain``: the run's mAP less ITQ's."""
    from ..retrieval import (
        ITQ,
        binarize,
        hamming_distances,
        mean_average_precision,
        mnist_retrieval_split,
        pack_bits,
        precision_within_radius,
    )
    from .metrics import encode_decode

    dataset, _ = load_datasets(run.config)
    if dataset.y is None:
        raise DataError(f"dataset {run.config.data_name!r} has no labels: retrieval is scored by the labels")
    X, y = np.asarray(dataset.X), np.asarray(dataset.y)
    queries, database = mnist_retrieval_split(y, n_per_class=n_per_class, random_state=seed)
    codes, _ = encode_decode(run.model, X, decode=False)
    itq = ITQ(run.model.n_components, n_iter=itq_iter, random_state=seed).fit(X[database])
    bits = binarize(codes)
    metrics: dict[str, float] = {"hashing_queries": float(len(queries))}
    for name, (query_bits, database_bits) in (("hashing", (bits[queries], bits[database])),
                                              ("itq", (itq.encode(X[queries]), itq.encode(X[database])))):
        distances = hamming_distances(pack_bits(query_bits), pack_bits(database_bits))
        within = precision_within_radius(y[queries], y[database], distances, radius=2)
        metrics[f"{name}_map"] = float(mean_average_precision(y[queries], y[database], distances))
        metrics[f"{name}_precision_r2"], metrics[f"{name}_hit_r2"] = float(within.precision), float(within.hit_fraction)
    metrics["hashing_map_gain"] = metrics["hashing_map"] - metrics["itq_map"]
    return metrics
