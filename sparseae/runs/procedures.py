"""Run-layer procedures: each model family's training procedure, looked up by the name the model
declares (:attr:`~sparseae.models.Autoencoder.training_procedure`) in :data:`PROCEDURES`, and run
from a run config into a run folder. The training itself is :mod:`sparseae.train.procedures`'s."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import STACK_KEYS, RunConfig
from ..data import Dataset
from ..errors import ConfigError, DataError
from ..models import Autoencoder
from ..train import TrainConfig, TrainResult, train
from ..train.checkpoint import has_checkpoint
from ..train.procedures import fit_conv_stack_layers, fit_supervised, pretrain_deep_model
from .folder import PRETRAIN_DIR

#: ``procedure(model, config, train_set, train_config, run_dir, resume) -> TrainResult`` (the
#: history of the run's own ``metrics.jsonl``: the last phase's, or the layers' one after the other).
RunProcedure = Callable[[Autoencoder, RunConfig, Dataset, TrainConfig, Path, bool], TrainResult]


def _labels_needed(model: Autoencoder, config: RunConfig, train_set: Dataset) -> None:
    if train_set.y is None:
        raise DataError(f"model {config.model_name!r} has a classifier head and trains on labels, but "
                        f"dataset {config.data_name!r} has none")


def _initialize_from_data(model: Autoencoder, train_set: Dataset, train_config: TrainConfig, run_dir: Path,
                          resume: bool) -> None:
    """The model's data-dependent initialization (a no-op for models without one), seeded by the run's
    ``random_state``; skipped when resuming from a checkpoint in ``run_dir`` or its pretrain folder."""
    if resume and (has_checkpoint(run_dir) or has_checkpoint(run_dir / PRETRAIN_DIR)):
        return
    model.initialize_from_data(train_set.X, generator=torch.Generator().manual_seed(train_config.random_state))


def train_plain(model: Autoencoder, config: RunConfig, train_set: Dataset, train_config: TrainConfig,
                run_dir: Path, resume: bool) -> TrainResult:
    """``plain``: data-dependent initialization (when the model has one; not on resume), then one
    call of the trainer on the data (no labels; the dataset's target rows for a model that predicts
    them, a transcoder)."""
    _initialize_from_data(model, train_set, train_config, run_dir, resume)
    targets = None
    if model.needs_targets and model.target_kind == "values":
        if train_set.targets is None:
            raise DataError(f"model {config.model_name!r} predicts target rows, but dataset {config.data_name!r} "
                            "has none (harvest pairs: sparseae harvest --position mlp_in --target mlp_out)")
        targets = train_set.targets
    return train(model, train_set.X, train_config, y=targets, run_dir=run_dir, resume=resume)


def train_supervised(model: Autoencoder, config: RunConfig, train_set: Dataset, train_config: TrainConfig,
                     run_dir: Path, resume: bool) -> TrainResult:
    """``supervised``, a model with a classifier head: data-dependent initialization (when the
    model has one), the optional unsupervised ``pretrain`` phase into ``run_dir/pretrain``, then
    training with the dataset's labels (:func:`~sparseae.train.procedures.fit_supervised`)."""
    _labels_needed(model, config, train_set)
    _initialize_from_data(model, train_set, train_config, run_dir, resume)
    pretrain_config = config.pretrain_config(progress=train_config.progress)
    return fit_supervised(model, train_set.X, train_set.y, pretrain_config=pretrain_config,
                          train_config=train_config, run_dir=run_dir, pretrain_dir=run_dir / PRETRAIN_DIR,
                          resume=resume)["train"]


def train_pretrain_finetune(model: Autoencoder, config: RunConfig, train_set: Dataset, train_config: TrainConfig,
                            run_dir: Path, resume: bool) -> TrainResult:
    """``pretrain_finetune``, a deep model: greedy layer-wise pre-training into
    ``run_dir/pretrain/layer<k>`` (when the config has a ``pretrain`` section,
    :func:`~sparseae.train.procedures.pretrain_deep_model`), then fine-tuning of the whole stack
    (on the labels for a model with a classifier head)."""
    supervised = model.needs_targets
    if supervised:
        _labels_needed(model, config, train_set)
    pretrain_config = config.pretrain_config(progress=train_config.progress)
    if pretrain_config is not None and not has_checkpoint(run_dir):
        layer_model, layer_params = config.layer_spec
        pretrain_deep_model(model, train_set.X, pretrain_config, layer_model=layer_model,
                            layer_params=layer_params, run_dir=run_dir / PRETRAIN_DIR, resume=resume)
    return train(model, train_set.X, train_config, y=train_set.y if supervised else None,
                 run_dir=run_dir, resume=resume, progress_label="train" if pretrain_config is None else "fine-tune")


def train_layerwise(model: Autoencoder, config: RunConfig, train_set: Dataset, train_config: TrainConfig,
                    run_dir: Path, resume: bool) -> TrainResult:
    """``layerwise``, a ``conv_stack``: greedy layer-wise training of its ``conv_sae`` layers into
    ``run_dir/pretrain/layer<k>`` (:func:`~sparseae.train.procedures.fit_conv_stack_layers`), with
    the ``train`` settings changed by the ``pretrain`` section's (as a deep model's pre-training);
    there is no fine-tuning. The layers' histories, one after the other (epochs numbered on), are
    the run's."""
    layer_config = config.pretrain_config(progress=train_config.progress) or train_config
    results = fit_conv_stack_layers(model, train_set.X, layer_config, run_dir=run_dir / PRETRAIN_DIR, resume=resume)
    history = [{**record, "epoch": epoch} for epoch, record in
               enumerate((record for result in results for record in result.history), start=1)]
    return TrainResult(history=history, best_epoch=len(history), stop_reason=results[-1].stop_reason)


def train_mac(model: Autoencoder, config: RunConfig, train_set: Dataset, train_config: TrainConfig,
              run_dir: Path, resume: bool) -> TrainResult:
    """``mac``, a ``binary_autoencoder``: fitted in one call by auxiliary coordinates (one history
    record per MAC iterate; no epochs or checkpoints, so a resume fits again)."""
    from ..retrieval.binary_autoencoder import fit_model

    history = fit_model(model, train_set.X, random_state=train_config.random_state)
    best = min(range(len(history)), key=lambda i: history[i]["val_loss"]
               if history[i]["val_loss"] == history[i]["val_loss"] else history[i]["train_loss"])
    return TrainResult(history=history, best_epoch=best + 1, stop_reason="converged")


#: Procedure name (a model's ``training_procedure``) → how a run trains it.
PROCEDURES: dict[str, RunProcedure] = {
    "plain": train_plain,
    "supervised": train_supervised,
    "pretrain_finetune": train_pretrain_finetune,
    "layerwise": train_layerwise,
    "mac": train_mac,
}


def procedure_of(model: Autoencoder) -> str:
    """The name of ``model``'s training procedure; :class:`ConfigError` for one no run knows."""
    name = model.training_procedure
    if name not in PROCEDURES:
        raise ConfigError(f"model {type(model).__name__} declares training procedure {name!r}; known: "
                          f"{', '.join(PROCEDURES)}")
    return name


def training_phases(config: RunConfig, model: Autoencoder, train_config: TrainConfig,
                    run_dir: Path) -> list[dict[str, Any]]:
    """The phases a run trains, in order, as its progress bars name them: ``{"name", "layers"
    (greedy layer-wise: the number of layers, each trained with this budget; else None),
    "optimizer", "epochs", "lbfgs_max_iter"}``."""
    def phase(name: str, phase_config, layers: int | None = None) -> dict[str, Any]:
        return {"name": name, "layers": layers, "optimizer": phase_config.optimizer,
                "epochs": phase_config.n_epochs, "lbfgs_max_iter": phase_config.lbfgs_max_iter}

    procedure = procedure_of(model)
    pretrain_config = config.pretrain_config(progress=train_config.progress)
    if procedure == "layerwise":
        return [phase("pretrain", pretrain_config or train_config, len(model.layers))]
    phases = []
    if pretrain_config is not None:
        if procedure == "pretrain_finetune":
            if not has_checkpoint(run_dir):  # a resumed fine-tuning does not pre-train again
                phases.append(phase("pretrain", pretrain_config, len(model.encoder.layers)))
        else:
            phases.append(phase("pretrain", pretrain_config))
    return phases + [phase("fine-tune" if pretrain_config is not None else "train", train_config)]


def check_pretrain_section(config: RunConfig, model: Autoencoder) -> None:
    """Refuse a ``pretrain`` section the model would not use (nothing is ignored silently)."""
    if not config.pretrain:
        return
    procedure = procedure_of(model)
    if procedure in ("plain", "mac"):
        raise ConfigError(f"model {config.model_name!r} has no pre-training phase: the pretrain section "
                          "applies to deep models (deep_autoencoder, mlp_classifier), conv_stack and "
                          "models with a classifier head; remove it")
    if set(config.pretrain) & set(STACK_KEYS) and procedure != "pretrain_finetune":
        where = "a conv_stack's layers are model.layers" if procedure == "layerwise" else \
            f"model {config.model_name!r} is pre-trained whole, not layer by layer"
        raise ConfigError(f"{where}; pretrain.layer_model and pretrain.layer_params belong to "
                          "deep_autoencoder and mlp_classifier")
