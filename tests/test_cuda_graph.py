"""TrainConfig(cuda_graph=True): the whole step in one CUDA graph. The GPU tests skip without CUDA."""
import numpy as np
import pytest
import torch

from sparseae.errors import ConfigError
from sparseae.models import create_model
from sparseae.train import TrainConfig, train

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def data(n=1000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 8)) @ rng.standard_normal((8, d))).astype(np.float32)


def test_cuda_graph_config_errors():
    with pytest.raises(ConfigError, match="cuda_graph must be true or false"):
        TrainConfig(cuda_graph="yes").validate()
    with pytest.raises(ConfigError, match="cuda_graph needs optimizer adam"):
        TrainConfig(cuda_graph=True, optimizer="sgd").validate()
    with pytest.raises(ConfigError, match="cuda_graph needs a CUDA device"):
        train(create_model("sparse_ae_l1", 32, 16), data(), TrainConfig(cuda_graph=True, device="cpu", max_epochs=1))


def fit(X, *, graph, epochs=3, model="sparse_ae_l1", run_dir=None, resume=False, **config):
    torch.manual_seed(0)
    m = create_model(model, X.shape[1], 64)
    kwargs = dict(batch_size=128, max_epochs=epochs, learning_rate=3e-3, lr_decay=0.8, device="cuda",
                  cuda_graph=graph)
    kwargs.update(config)
    result = train(m, X, TrainConfig(**kwargs), run_dir=run_dir, resume=resume)
    return m, result


@needs_cuda
def test_graphed_training_equals_eager():
    """1000 rows in batches of 128: 7 replays and one eager batch of 104 per epoch; the learning
    rate decays per epoch through the tensor the graph reads."""
    X = data()
    eager, r_eager = fit(X, graph=False)
    graphed, r_graphed = fit(X, graph=True)
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(graphed.state_dict()[key], value, rtol=1e-4, atol=1e-5)
    for a, b in zip(r_eager.history, r_graphed.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["train_l1"] == pytest.approx(a["train_l1"], rel=1e-4)
    assert r_graphed.history[-1]["train_loss"] < 0.5 * r_graphed.history[0]["train_loss"]


@needs_cuda
@pytest.mark.parametrize("graph", [False, True])
def test_compiled_update_matches_eager(graph):
    """``compile`` (forward and backward; with ``cuda_graph`` the update too: projection, foreach
    Adam, constraints) trains as the eager loop does."""
    X = data()
    eager, r_eager = fit(X, graph=False)
    compiled, r_compiled = fit(X, graph=graph, compile=True)
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[key], value, rtol=1e-3, atol=1e-4)
    assert r_compiled.history[-1]["train_loss"] == pytest.approx(r_eager.history[-1]["train_loss"], rel=1e-3)


@needs_cuda
def test_graphed_training_resumes(tmp_path):
    X = data()
    straight, _ = fit(X, graph=True, epochs=4)
    fit(X, graph=True, epochs=2, run_dir=tmp_path)
    resumed, result = fit(X, graph=True, epochs=4, run_dir=tmp_path, resume=True)
    assert len(result.history) == 4
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=1e-4, atol=1e-5)


@needs_cuda
@pytest.mark.parametrize("model", ["topk_sae", "denoising_ae"])
def test_graphed_models_learn_compiled_amp(model):
    X = data(2000, 48)
    _, result = fit(X, graph=True, model=model, epochs=4, compile=True, amp=True)
    losses = [r["train_loss"] for r in result.history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.3 * abs(losses[0])


@needs_cuda
def test_uncapturable_step_is_a_config_error():
    X = data()
    torch.manual_seed(0)
    model = create_model("sparse_ae_l1", 32, 64)
    loss = model.loss

    def syncing_loss(x, **kw):
        if float(x.abs().sum()) < 0:  # a host synchronisation inside the step
            raise AssertionError
        return loss(x, **kw)

    model.loss = syncing_loss
    with pytest.raises(ConfigError, match="cannot be captured in a CUDA graph"):
        train(model, X, TrainConfig(batch_size=128, max_epochs=1, device="cuda", cuda_graph=True))
