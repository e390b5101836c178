"""The model contract: every hook the trainer, the run layer, evaluation, io and the estimators read
is declared once on :class:`sparseae.models.Autoencoder` with its default; every registered model
derives from it and answers each hook with a value of the declared type; nothing in the package
probes a model with ``getattr``/``hasattr``; a new model with only the required parts trains."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import sparseae
from sparseae.errors import ConfigError
from sparseae.groups import GroupStructure
from sparseae.models import MODELS, Autoencoder, create_model
from sparseae.nn.decoders import LinearDecoder
from sparseae.nn.likelihoods import GaussianLikelihood
from sparseae.runs.procedures import PROCEDURES
from sparseae.train import TrainConfig, train
from sparseae.train.batches import BatchSource
from sparseae.train.optim import make_optimizer
from sparseae.train.trainer import _lbfgs_epoch

PACKAGE = Path(sparseae.__file__).parent
#: Small parameters for the registered models that need more than (16 features, 4 components).
SMALL = {
    "conv_sae": (36, 4, dict(image_shape=[6, 6], kernel_size=3)),
    "local_sae": (36, 4, dict(image_shape=[6, 6], kernel_size=3, groups=None)),
    "conv_stack": (64, 4, dict(image_shape=[8, 8], layers=[{"n_components": 4, "kernel_size": 3}])),
    "topk_sae": (16, 4, dict(k=2)),
    "deep_autoencoder": (16, 4, dict(hidden=[8])),
    "semantic_hashing": (16, 4, dict(hidden=[8])),
    "mlp_classifier": (16, 4, dict(hidden=[8], n_classes=3)),
    "drsae": (16, 4, dict(n_classes=3)),
}
#: Every hook of the contract: name → "attr" (a class attribute or property) or "method".
HOOKS = {"training_procedure": "attr", "target_kind": "attr", "can_decode": "attr",
         "may_leave_parameters_unused": "attr", "needs_targets": "attr", "n_classes": "attr",
         "code_range": "attr", "code_activation": "attr", "n_features": "attr", "n_components": "attr",
         "learning_rate_scales": "method", "initialize_from_data": "method", "activity_code": "method",
         "code_groups": "method", "unit_filters": "method", "pseudo_gradient_names": "method",
         "encode": "method", "decode": "method", "loss": "method", "energy": "method",
         "set_full_batch": "method", "project_gradients": "method", "apply_constraints": "method"}


def small_model(name: str) -> Autoencoder:
    n_features, n_components, params = SMALL.get(name, (16, 4, {}))
    torch.manual_seed(0)
    return create_model(name, n_features, n_components, **params)


def test_every_hook_is_declared_once_on_the_base_with_a_docstring():
    for name, kind in HOOKS.items():
        assert name in vars(Autoencoder), f"{name} is not declared on Autoencoder"
        value = vars(Autoencoder)[name]
        if kind == "method" or isinstance(value, property):
            assert inspect.getdoc(value), f"Autoencoder.{name} has no docstring"
    source = inspect.getsource(Autoencoder)
    for name in ("target_kind", "can_decode", "may_leave_parameters_unused", "training_procedure"):
        assert f"{name}: ClassVar" in source  # a class attribute with its #: comment above it


@pytest.mark.parametrize("name", MODELS.names())
def test_every_registered_model_answers_each_hook_with_its_declared_type(name):
    model = small_model(name)
    assert isinstance(model, Autoencoder)
    assert model.training_procedure in PROCEDURES
    assert model.target_kind in ("classes", "values")
    for flag in (model.can_decode, model.may_leave_parameters_unused, model.needs_targets):
        assert type(flag) is bool
    assert model.n_classes is None or (type(model.n_classes) is int and model.n_classes >= 2)
    assert model.code_range is None or (len(model.code_range) == 2 and model.code_range[0] < model.code_range[1])
    assert model.code_activation is None or isinstance(model.code_activation, str)
    assert model.spec["name"] == name and model.spec["params"]["n_features"] == model.n_features
    parameters = dict(model.named_parameters())
    scales = model.learning_rate_scales()
    assert isinstance(scales, dict) and set(scales) <= set(parameters)
    assert all(isinstance(v, float) and v > 0 for v in scales.values())
    assert all(isinstance(g, GroupStructure) for g in model.code_groups())
    assert set(model.pseudo_gradient_names()) <= set(parameters)
    filters = model.unit_filters()
    assert filters.shape[1] == model.n_features and filters.shape[0] >= 1
    x = torch.rand(3, model.n_features)
    model.eval()
    with torch.no_grad():
        assert model.activity_code(x).shape == model.encode(x).shape
    assert model.initialize_from_data(torch.rand(5, model.n_features).numpy(),
                                      generator=torch.Generator().manual_seed(0)) is None


def test_the_hooks_say_what_each_family_is():
    assert small_model("sparse_ae_kl").code_range == (0.0, 1.0)
    assert small_model("sparse_ae_l1").code_range is None
    assert small_model("sparse_ae_l1").code_activation == "relu"
    assert small_model("lista").target_kind == "values"
    conv_stack = small_model("conv_stack")
    assert conv_stack.can_decode is False and conv_stack.training_procedure == "layerwise"
    drsae = small_model("drsae")
    assert drsae.n_classes == 3 and drsae.may_leave_parameters_unused
    drsae.set_classification_weight(1.0)  # needs_targets follows the classification term's weight
    assert drsae.needs_targets
    drsae.set_classification_weight(0.0)
    assert not drsae.needs_targets
    steps = drsae.encoder.n_steps
    assert drsae.learning_rate_scales()["encoder.E"] == pytest.approx(1 / steps)
    assert small_model("jumprelu_sae").pseudo_gradient_names() == ["encoder.log_threshold"]
    # sparse coding's inference groups and PSD's inferred code
    tree = create_model("sparse_coding", 16, 7, groups={"kind": "tree", "parent": [-1, 0, 0, 1, 1, 2, 2]})
    groups = tree.code_groups()  # the group penalty's and the inference's: the same tree
    assert len(groups) == 2 and all(g.parent is not None and g.n_groups == 7 for g in groups)
    assert small_model("sparse_coding").code_groups() == []
    psd = small_model("psd").eval()
    x = torch.rand(5, 16)
    with torch.no_grad():
        assert torch.equal(psd.activity_code(x), psd.sparse_code(x))
        assert not torch.allclose(psd.activity_code(x), psd.encode(x))
    # UFLDL's W1 rows for a one-layer encoder; a deep model's decoder atoms
    ae = small_model("autoencoder")
    assert torch.equal(ae.unit_filters(), ae.encoder.weight)
    deep = small_model("deep_autoencoder")
    assert torch.equal(deep.unit_filters(), deep.decoder.weight.t())


# ---------------------------------------------------------------------- no probing outside the base
BASE_MODULE = PACKAGE / "models" / "base.py"
#: Names of objects that hold a model: a getattr/hasattr on them (or on an attribute of them) is probing.
MODEL_NAMES = {"model", "module", "probe", "layer", "pruned", "model_"}
#: (file relative to the package, unparsed first argument) → why the probe is legitimate. Empty today:
#: every probe of a model reads a declared hook; other objects (argparse namespaces, torch/numpy
#: modules, optional imports, an estimator's own fitted attributes, a model's own partly built
#: state through ``self``) are not models and are not matched.
ALLOWED: dict[tuple[str, str], str] = {
    ("data/harvest.py", "model"): "a Hugging Face transformers model being harvested, not a sparseae model",
}


def _holder(node: ast.expr) -> str | None:
    """The model-holding name at the root of ``node`` (``model``, ``model.encoder``, ``self.model``)."""
    while isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr in MODEL_NAMES:
            return f"self.{node.attr}"
        node = node.value
    if isinstance(node, ast.Name) and node.id in MODEL_NAMES:
        return node.id
    return None


def model_probes(source: str) -> list[tuple[int, str]]:
    """(line, first argument) of each getattr/hasattr on a model-holding name in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                and node.args and _holder(node.args[0]) is not None):
            found.append((node.lineno, ast.unparse(node.args[0])))
    return found


def test_the_probe_finder_finds_probes():
    source = ("a = getattr(model, 'target_kind', 'classes')\nb = hasattr(self.model_, 'spec')\n"
              "c = getattr(model.encoder, 'code_range', None)\nd = getattr(args, 'threads', None)\n"
              "e = getattr(self, '_pending', None)\n")
    assert model_probes(source) == [(1, "model"), (2, "self.model_"), (3, "model.encoder")]


def test_nothing_outside_the_base_probes_a_model():
    probes = []
    for file in sorted(PACKAGE.rglob("*.py")):
        if file == BASE_MODULE:
            continue
        relative = str(file.relative_to(PACKAGE))
        probes += [f"{relative}:{line}: {arg}" for line, arg in model_probes(file.read_text())
                   if (relative, arg) not in ALLOWED]
    assert probes == [], "read a hook declared on Autoencoder instead:\n" + "\n".join(probes)


# ---------------------------------------------------------------------- a new model, the trainer's state
class TwoLayer(Autoencoder):
    """A user's model with only the required parts: an encoder (any module), a decoder, a likelihood."""

    def __init__(self, n_features: int, n_components: int) -> None:
        super().__init__(nn.Sequential(nn.Linear(n_features, n_components), nn.ReLU()),
                         LinearDecoder(n_components, n_features), GaussianLikelihood())


def test_a_new_model_with_only_the_required_parts_trains_with_the_defaults():
    torch.manual_seed(0)
    X = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    model = TwoLayer(6, 3)
    assert model.code_range is None and model.code_activation is None and model.spec == {}
    with torch.no_grad():
        before = float(model.loss(torch.from_numpy(X)).loss)
    result = train(model, X)
    assert len(result.history) == TrainConfig().max_epochs and result.stop_reason == "max_epochs"
    assert result.history[-1]["train_loss"] < before
    assert torch.isfinite(model.unit_filters()).all() and model.unit_filters().shape == (3, 6)


def test_train_refuses_a_module_without_the_contract():
    with pytest.raises(ConfigError, match="train needs a sparseae model .* not Linear"):
        train(nn.Linear(4, 2), np.zeros((8, 4), np.float32))


def test_lbfgs_convergence_is_the_trainers_state_not_the_optimizers():
    X = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    config = TrainConfig(optimizer="lbfgs", lbfgs_iter_per_epoch=500, lbfgs_max_iter=5000, device="cpu")
    torch.manual_seed(0)
    result = train(create_model("linear_ae", 5, 2), X, config)
    assert result.stop_reason == "converged" and len(result.history) < config.n_epochs
    model = create_model("linear_ae", 5, 2).double()
    optimizer = make_optimizer(model, config.validate())
    source = BatchSource(X, torch.device("cpu"), np.arange(40), dtype=torch.float64)
    sums, count, converged = _lbfgs_epoch(model, optimizer, source, False, 1, config)
    assert converged is True and count == 1 and "converged" not in vars(optimizer)
