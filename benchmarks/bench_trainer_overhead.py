"""Claim: training through sparseae is faster than a plain hand-written PyTorch loop, and costs no
more than 10% over the same loop given sparseae's optimizer (fused Adam, also on the CPU).

All train the same L1 sparse autoencoder (ReLU codes, unit-norm decoder columns, Adam) on the
same data in the same batch order, side by side in one run, alternating repetitions so that
machine noise hits them alike: sparseae.train; the loop a user writes (``torch.optim.Adam`` with
PyTorch's defaults: on the CPU a per-tensor loop of element-wise ops); the same loop with
``Adam(fused=True)``. Prints a table: loop | device | seconds/epoch (median) | ratio to the plain
loop | final loss.

``--model mlp`` times instead the fine-tuning of the CAE / SDA recipes (an MLP 784-1000-10,
sigmoid, softmax cross-entropy, plain SGD at lr 1.0, by default on batches of 10): there no fused
optimizer helps (PyTorch's fused SGD is slower on the CPU), so it measures the cost of the
trainer's own per-step work (logged terms, finiteness check, general model interfaces).

    python benchmarks/bench_trainer_overhead.py [--data mnist|digits] [--device cpu|cuda] [--repeats 5]
    python benchmarks/bench_trainer_overhead.py --model mlp --batch-size 10 [--n-samples 10000] [--compile]

``--compile`` (mlp) adds a row for ``sparseae.train`` with ``TrainConfig(compile=True)`` (its
compilation is done in the warm-up, outside the timings).
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import torch

from sparseae.models import create_model
from sparseae.train import TrainConfig, train
from sparseae.train.trainer import epoch_seed


def load(name: str) -> np.ndarray:
    if name == "mnist":
        from sparseae.data import load_mnist

        return load_mnist(split="train")[0]
    from sparseae.data import load_digits_data

    return np.tile(load_digits_data()[0], (20, 1))


def hand_written_epoch(model, X: torch.Tensor, batch_size: int, lr: float, epoch_seed: int,
                       optimizer: torch.optim.Optimizer) -> float:
    """What a user would write: shuffle, forward, ½‖x − x̂‖² + λ‖z‖₁, backward, step, renormalize."""
    generator = torch.Generator().manual_seed(epoch_seed)
    order = torch.randperm(X.shape[0], generator=generator)
    encoder_w, encoder_b = model.encoder.weight, model.encoder.bias
    decoder_w, decoder_b = model.decoder.weight_, model.decoder.bias
    lam = model.penalties["l1"].weight
    total = torch.zeros((), device=X.device)
    for start in range(0, X.shape[0], batch_size):
        x = X[order[start:start + batch_size].to(X.device)]
        z = torch.relu(x @ encoder_w.t() + encoder_b)
        x_hat = z @ decoder_w.t() + decoder_b
        loss = 0.5 * (x_hat - x).pow(2).sum(1).mean() + lam * z.abs().sum(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            decoder_w.div_(decoder_w.norm(dim=0, keepdim=True).clamp_min(1e-12))
        total += loss.detach() * x.shape[0]
    return float(total) / X.shape[0]


def hand_written_mlp_epoch(model, X: torch.Tensor, y: torch.Tensor, batch_size: int, epoch_seed: int,
                           optimizer: torch.optim.Optimizer) -> float:
    """What a user would write for an MLP: shuffle, sigmoid layers, softmax head, cross-entropy."""
    generator = torch.Generator().manual_seed(epoch_seed)
    order = torch.randperm(X.shape[0], generator=generator)
    layers, head = model.encoder.layers, model.head
    total = torch.zeros((), device=X.device)
    for start in range(0, X.shape[0], batch_size):
        rows = order[start:start + batch_size].to(X.device)
        h = X[rows]
        for layer in layers:
            h = torch.sigmoid(torch.nn.functional.linear(h, layer.weight, layer.bias))
        loss = torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, head.weight, head.bias), y[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * rows.shape[0]
    return float(total) / X.shape[0]


def main_mlp(args) -> None:
    from sparseae.data import load_mnist
    from sparseae.models.deep import mlp_classifier

    X, y = load_mnist(split="train")
    X, y = X[:args.n_samples], y[:args.n_samples]
    device = torch.device(args.device)
    X_device, y_device = torch.from_numpy(X).to(device), torch.from_numpy(y).long().to(device)
    config = dict(optimizer="sgd", learning_rate=1.0, momentum=0.0, batch_size=args.batch_size, max_epochs=1,
                  device=args.device)
    times: dict[str, list[float]] = {"sparseae.train": [], "hand-written loop": []}
    variants = {"sparseae.train": TrainConfig(**config)}
    if args.compile:
        times["sparseae.train, compile"] = []
        variants["sparseae.train, compile"] = TrainConfig(**config, compile=True)
    losses: dict[str, float] = {}
    for warm in variants.values():  # warm-up (and compilation)
        train(mlp_classifier(784, 1000), X[:1000], warm, y=y[:1000])
    for repeat in range(args.repeats):
        torch.manual_seed(repeat)
        ours = mlp_classifier(784, 1000)
        theirs = mlp_classifier(784, 1000)
        theirs.load_state_dict(ours.state_dict())
        theirs.to(device).train()
        initial = {name: value.clone() for name, value in ours.state_dict().items()}
        for name, variant in variants.items():
            ours.load_state_dict(initial)
            start = time.perf_counter()
            result = train(ours, X, replace(variant, random_state=repeat), y=y)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
            losses[name] = result.history[-1]["train_classification"]
        optimizer = torch.optim.SGD(theirs.parameters(), lr=1.0)
        start = time.perf_counter()
        losses["hand-written loop"] = hand_written_mlp_epoch(theirs, X_device, y_device, args.batch_size,
                                                             epoch_seed(repeat, 1), optimizer)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times["hand-written loop"].append(time.perf_counter() - start)
    print(f"MLP 784-1000-10 (sigmoid, softmax), MNIST ({len(X)} samples), SGD lr 1.0, batch {args.batch_size}, "
          f"1 epoch, median of {args.repeats}, torch threads {torch.get_num_threads()}")
    report(times, losses, device)


def report(times: dict[str, list[float]], losses: dict[str, float], device: torch.device) -> None:
    baseline = statistics.median(times["hand-written loop"])
    width = max(map(len, times))
    print(f"{'loop':<{width}} | {'device':<6} | {'s/epoch':>8} | {'ratio':>6} | {'final loss':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<{width}} | {device.type:<6} | {median:8.3f} | {median / baseline:6.3f} | {losses[name]:10.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist", choices=["mnist", "digits"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-components", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="sae", choices=["sae", "mlp"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's)")
    parser.add_argument("--n-samples", type=int, default=60000, help="--model mlp: MNIST images per epoch")
    parser.add_argument("--compile", action="store_true", help="--model mlp: also time TrainConfig(compile=True)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model == "mlp":
        return main_mlp(args)

    X = load(args.data)
    device = torch.device(args.device)
    X_device = torch.from_numpy(X).to(device)
    lr = 1e-3
    times: dict[str, list[float]] = {"sparseae.train": [], "hand-written loop": [], "hand-written, fused": []}
    losses: dict[str, float] = {}
    train(create_model("sparse_ae_l1", X.shape[1], args.n_components), X[:2048],
          TrainConfig(max_epochs=1, device=args.device))  # warm-up (allocator, kernels)
    for repeat in range(args.repeats):
        torch.manual_seed(repeat)
        ours = create_model("sparse_ae_l1", X.shape[1], args.n_components, sparsity_weight=0.1)
        initial = {name: value.clone() for name, value in ours.state_dict().items()}
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = train(ours, X, TrainConfig(max_epochs=1, batch_size=args.batch_size, learning_rate=lr,
                                            device=args.device, random_state=repeat))
        if device.type == "cuda":
            torch.cuda.synchronize()
        times["sparseae.train"].append(time.perf_counter() - start)
        losses["sparseae.train"] = result.history[-1]["train_loss"]

        for name, fused in (("hand-written loop", None), ("hand-written, fused", True)):
            theirs = create_model("sparse_ae_l1", X.shape[1], args.n_components, sparsity_weight=0.1)
            theirs.load_state_dict(initial)
            theirs.to(device)
            optimizer = torch.optim.Adam(theirs.parameters(), lr=lr, fused=fused)
            start = time.perf_counter()
            losses[name] = hand_written_epoch(theirs, X_device, args.batch_size, lr, epoch_seed(repeat, 1), optimizer)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)

    print(f"L1 sparse AE {X.shape[1]}-{args.n_components}, {args.data} ({X.shape[0]} samples), "
          f"batch {args.batch_size}, Adam, 1 epoch, median of {args.repeats}, torch threads {torch.get_num_threads()}")
    report(times, losses, device)


if __name__ == "__main__":
    main()
