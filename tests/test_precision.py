"""TrainConfig(amp=True, bf16_weights=True): the step runs on bf16 copies of the weight matrices.
The CPU tests use CPU bf16 autocast; the CUDA ones (graph, compile) skip without a GPU."""
import numpy as np
import pytest
import torch

from sparseae.errors import ConfigError
from sparseae.models import create_model
from sparseae.train import TrainConfig, optim, train
from sparseae.train.precision import Bf16Weights

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def data(n=1000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 8)) @ rng.standard_normal((8, d))).astype(np.float32)


def fit(X, *, bf16_weights, model="sparse_ae_l1", epochs=3, run_dir=None, resume=False, params=None, **config):
    torch.manual_seed(0)
    m = create_model(model, X.shape[1], 64, **(params or {}))
    kwargs = dict(batch_size=128, max_epochs=epochs, learning_rate=3e-3, lr_decay=0.8, device="cpu",
                  amp=True, bf16_weights=bf16_weights)
    kwargs.update(config)
    return m, train(m, X, TrainConfig(**kwargs), run_dir=run_dir, resume=resume)


def test_config_errors():
    with pytest.raises(ConfigError, match="bf16_weights must be true or false"):
        TrainConfig(amp=True, bf16_weights=1).validate()
    with pytest.raises(ConfigError, match="bf16_weights needs amp"):
        TrainConfig(bf16_weights=True).validate()
    with pytest.raises(ConfigError, match="not lbfgs"):
        TrainConfig(amp=True, bf16_weights=True, optimizer="lbfgs").validate()


def test_copies_are_the_weight_matrices_in_bf16():
    model = create_model("topk_sae", 32, 64, k=4)
    weights = Bf16Weights(model)
    assert weights.names == ["encoder.weight", "decoder.weight_"]
    for copy, master in zip(weights.copies, weights.masters, strict=True):
        assert copy.dtype == torch.bfloat16 and copy.is_leaf and copy.requires_grad
        assert torch.equal(copy, master.detach().to(torch.bfloat16))


def test_l1_sae_trains_exactly_as_under_autocast():
    """The L1 SAE uses its weights only in matrix products, which see the same bf16-rounded
    matrices either way, and their bf16 gradients become the same float32 ones: equal results.
    The forward really runs on the copies, and the model keeps its float32 weights."""
    X = data()
    autocast, r_autocast = fit(X, bf16_weights=False)
    torch.manual_seed(0)
    model = create_model("sparse_ae_l1", 32, 64)
    seen = []
    loss = model.loss

    def spying_loss(x, **kw):
        seen.append(model.encoder.weight.dtype)
        return loss(x, **kw)

    model.loss = spying_loss
    result = train(model, X, TrainConfig(batch_size=128, max_epochs=3, learning_rate=3e-3, lr_decay=0.8,
                                         device="cpu", amp=True, bf16_weights=True))
    # 7 full batches + 1 of 104 on the bf16 copies, and per epoch the trainer's probe of the end
    # state (trainer.end_state_problem: one forward of the float32 model, no gradient)
    assert seen.count(torch.bfloat16) == 3 * 8 and seen.count(torch.float32) == 3 and len(seen) == 3 * 9
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for key, value in autocast.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in r_autocast.history]
    assert result.history[-1]["train_loss"] < 0.6 * result.history[0]["train_loss"]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_topk_sae_trains_as_under_autocast(optimizer):
    """TopK reads decoder columns outside a matrix product (the gather of the k active atoms
    and AuxK's dead latents): there the copies differ from float32 by bf16 rounding only."""
    X = data(1500, 48)
    rate = 3e-3 if optimizer == "adam" else 0.01
    params = {"k": 8}
    autocast, r_a = fit(X, bf16_weights=False, model="topk_sae", params=params, optimizer=optimizer,
                        learning_rate=rate, epochs=4)
    copies, r_c = fit(X, bf16_weights=True, model="topk_sae", params=params, optimizer=optimizer,
                      learning_rate=rate, epochs=4)
    for key in ("encoder.weight", "decoder.weight_"):
        a, b = autocast.state_dict()[key], copies.state_dict()[key]
        assert float((a - b).norm() / a.norm()) < 1e-2, key
    assert r_c.history[-1]["train_loss"] == pytest.approx(r_a.history[-1]["train_loss"], rel=5e-3)
    assert r_c.history[-1]["train_loss"] < 0.8 * r_c.history[0]["train_loss"]


def test_resume_equals_a_straight_run(tmp_path):
    X = data()
    straight, _ = fit(X, bf16_weights=True, epochs=4)
    fit(X, bf16_weights=True, epochs=2, run_dir=tmp_path)
    resumed, result = fit(X, bf16_weights=True, epochs=4, run_dir=tmp_path, resume=True)
    assert len(result.history) == 4
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)


def test_tied_and_constrained_models():
    """A tied autoencoder (one matrix used twice) and a denoising AE train on the copies."""
    X = (data(800, 32) > 0).astype(np.float32)
    for name in ("contractive_ae", "denoising_ae"):
        a, r_a = fit(X, bf16_weights=False, model=name)
        b, r_b = fit(X, bf16_weights=True, model=name)
        assert r_b.history[-1]["train_loss"] == pytest.approx(r_a.history[-1]["train_loss"], rel=2e-3)
        assert r_b.history[-1]["train_loss"] < r_b.history[0]["train_loss"]


def test_update_traces_under_torch_compile(monkeypatch):
    """With compile and cuda_graph on CUDA the update is compiled; that the copies' gradient hand-off
    and the rewrite of the copies trace is checked here on the CPU (aot_eager backend)."""
    X = torch.as_tensor(data(256))
    config = TrainConfig(amp=True, bf16_weights=True, compile="aot_eager", device="cpu").validate()

    def three_steps(compiled: bool):
        monkeypatch.setattr(optim, "compiles_update", lambda config, device: compiled)
        torch.manual_seed(0)
        model = create_model("sparse_ae_l1", 32, 64)
        weights = Bf16Weights(model)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        update = optim.training_update(model, opt, config, torch.device("cpu"), weights)

        def loss_of(x, y):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model.loss(x).loss, {}

        forward = weights.wrap(loss_of)
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            forward(X, None)[0].backward()
            update()
        assert all(c.grad is None for c in weights.copies)
        for copy, master in zip(weights.copies, weights.masters, strict=True):
            assert torch.equal(copy, master.detach().to(torch.bfloat16))
        return model

    eager, compiled = three_steps(False), three_steps(True)
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[key], value, rtol=1e-4, atol=2e-5)


@needs_cuda
@pytest.mark.parametrize("model", ["sparse_ae_l1", "topk_sae"])
def test_graphed_compiled_copies_match_autocast(model):
    """The configuration the throughput benchmark times: compile + cuda_graph + bf16 copies."""
    X = data(2000, 48)
    kwargs = dict(device="cuda", model=model, epochs=3, params={"k": 8} if model == "topk_sae" else None)
    a, r_a = fit(X, bf16_weights=False, **kwargs)
    b, r_b = fit(X, bf16_weights=True, compile=True, cuda_graph=True, **kwargs)
    for key in ("encoder.weight", "decoder.weight_"):
        assert float((a.state_dict()[key] - b.state_dict()[key]).norm() / a.state_dict()[key].norm()) < 1e-2
    assert r_b.history[-1]["train_loss"] == pytest.approx(r_a.history[-1]["train_loss"], rel=3e-3)


def test_compiled_forward_runs_on_the_copies():
    """torch.compile traces the swap of the weights for their copies (aot_eager: the same kernels,
    so the same numbers as eager autocast)."""
    X = data()
    eager, _ = fit(X, bf16_weights=False)
    compiled, _ = fit(X, bf16_weights=True, compile="aot_eager")
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[key], value, rtol=0, atol=0)
