"""Evaluations of what an autoencoder learns about the data manifold: the contractive autoencoder's
tangents (``cae_tangents``) and the denoising autoencoder's score field (``dae_score_field``)."""
from __future__ import annotations

import numpy as np
import torch

from ...errors import ConfigError
from ...validation import check_bool, check_number
from ..data import load_datasets
from .registry import FinishedRun, register_evaluation

# ---------------------------------------------------------------------------------- CAE tangents

@register_evaluation("cae_tangents", metrics=("tangent_jacobian_norm", "tangent_saturated", "tangent_test_mse",
                                              "tangent_top_singular_value"))
def _cae_tangents(run: FinishedRun, *, n_eval: int = 2000, k: int = 6, draw: bool = True) -> dict[str, float]:
    """Rifai et al. 2011: a contractive code is locally flat and its Jacobian's leading right singular
    vectors are tangents of the digit manifold. On the first ``n_eval`` evaluation images: mean
    ‖J_f(x)‖_F, the saturated fraction of the codes and the reconstruction's mean squared error per
    pixel (:func:`~sparseae.evaluate.manifold.code_statistics`); at the first image of each class,
    the ``k`` leading tangents (mean top singular value), drawn into ``cae_tangents.png`` when ``draw``."""
    from ...evaluate.manifold import code_statistics, tangents_by_class

    check_number(n_eval, "evaluate.n_eval", low=1, integer=True)
    check_number(k, "evaluate.k", low=1, integer=True)
    check_bool(draw, "evaluate.draw")
    _, eval_set = load_datasets(run.config)
    stats = code_statistics(run.model, np.asarray(eval_set.X[:n_eval]))
    inputs, directions, singular_values = tangents_by_class(run.model, np.asarray(eval_set.X), eval_set.y, k=k)
    if draw and eval_set.image_shape:
        from ...viz.fields import save_tangent_images

        shape = f"{run.model.n_features}-{run.model.n_components}"
        save_tangent_images(run.run_dir / "cae_tangents.png", inputs.reshape(-1, *eval_set.image_shape), directions,
                            singular_values=singular_values,
                            title=f"{run.config.model_name} {shape}: test images and the leading right singular "
                                  "vectors of J_f(x) (tangents)")
    return {"tangent_jacobian_norm": stats["jacobian_norm"], "tangent_saturated": stats["saturated"],
            "tangent_test_mse": stats["mse"], "tangent_top_singular_value": float(singular_values[:, 0].mean())}


# ------------------------------------------------------------------------------- DAE score field

@register_evaluation("dae_score_field", metrics=("score_cosine", "score_cosine_untrained", "score_cosine_optimal",
                                                 "score_cosine_smoothed", "score_sigma2_fit", "score_test_points"))
def _dae_score_field(run: FinishedRun, *, n_test: int = 2000, draw: bool = True) -> dict[str, float]:
    """Alain & Bengio 2014: a DAE trained with small Gaussian corruption σ has r(x) − x ∝ σ²∇log p(x).
    On ``n_test`` fresh points of the run's ``spiral`` data (seed + 1), near the curve: the cosine of
    the field with the exact score, against the model at its initialization and the optimal denoiser
    (:func:`~sparseae.evaluate.manifold.score_field_figures`); the field drawn into
    ``dae_score_field.png`` when ``draw``. σ is read from the model's ``corruption`` (``gaussian:σ``)."""
    from ...data.spiral import make_spiral
    from ...evaluate.manifold import grid, reconstruction_field, score_field_figures
    from ...models import create_model

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
        from ...viz.fields import save_vector_field

        points = grid(-1.2, 1.2, 31)
        save_vector_field(run.run_dir / "dae_score_field.png", points, reconstruction_field(run.model, points),
                          np.asarray(load_datasets(run.config)[0].X), unit_arrows=True,
                          title=f"DAE r(x) − x, σ = {sigma:g} (cosine with ∇log p near the manifold: "
                                f"{figures['cosine']:.3f})")
    return {"score_cosine": figures["cosine"], "score_cosine_untrained": figures["untrained"],
            "score_cosine_optimal": figures["optimal"], "score_cosine_smoothed": figures["smoothed"],
            "score_sigma2_fit": figures["sigma2_fit"], "score_test_points": figures["test_points"]}
