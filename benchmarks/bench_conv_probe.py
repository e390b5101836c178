"""Claim (issue 4): a convnet pre-trained layer by layer as convolutional sparse autoencoders with
L2 pooling gives better linearly decodable features than a random-weights network of the same
shape, and 2 pre-trained layers are at least as good as 1 (Kavukcuoglu et al. 2010; MODELS.md §6).

Input: MNIST images, locally contrast-normalized (Jarrett et al. 2009; both networks see it).
Layer 1: ``conv_sae`` (16 maps 7×7, disjoint pools of 2 maps, λ = 0.4); its encoder → L2 pooling
→ 2×2 max pooling → local contrast normalization is a feature stage (8, 11, 11). Layer 2: a
``conv_sae`` trained the same way on those outputs (64 maps 5×5, toroidal 1-D windows of 3 maps,
λ = 0.15, denoising with masking 0.5) → L2 pooling → 2×2 max pooling: (64, 6, 6)
(:func:`sparseae.models.fit_conv_stack`). Random baselines: the same stack untrained (its
initialization, another seed). Each network's top-stage features feed one multinomial logistic
regression (standardized features), trained on the ``--n-train`` images the autoencoders saw
(with their labels) and scored on ``--n-test`` test images.

    SPARSEAE_MNIST=../shared/data/mnist.npz python benchmarks/bench_conv_probe.py \\
        [--n-train 10000] [--n-test 10000] [--epochs 4] [--epochs2 6] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sparseae.data import load_mnist
from sparseae.evaluate import linear_probe
from sparseae.models import ConvFeatureExtractor, build_conv_stack
from sparseae.models.conv_stack import transform_rows
from sparseae.nn.contrast import local_contrast_normalize
from sparseae.train import TrainConfig
from sparseae.train.procedures import fit_conv_stack


def pools(n_maps: int, kind: str, size: int) -> dict:
    """Pools of maps: disjoint blocks of ``size`` maps, or toroidal 1-D windows of ``size``."""
    if kind == "disjoint":
        return {"kind": "disjoint", "group_size": size, "n_components": n_maps}
    return {"kind": "grid", "height": 1, "width": n_maps, "window": [1, size], "toroidal": True}


def layer_specs(args: argparse.Namespace) -> list[dict]:
    first = {"n_components": args.maps1, "kernel_size": args.kernel1,
             "pools": pools(args.maps1, args.pools1, args.pool1), "sparsity_weight": args.lambda1,
             "corruption": args.corruption1, "spatial_pool": args.spatial_pool, "pool_size": 2,
             "contrast_sigma": args.stage_lcn_sigma}
    second = {"n_components": args.maps2, "kernel_size": args.kernel2, "padding": args.kernel2 // 2,
              "pools": pools(args.maps2, args.pools2, args.pool2), "sparsity_weight": args.lambda2,
              "corruption": args.corruption2, "spatial_pool": args.spatial_pool, "pool_size": 2}
    return [first, second]


def active_fraction(extractor: ConvFeatureExtractor, X: np.ndarray) -> float:
    """Fraction of the top stage's feature-map units (before pooling) that are > 0."""
    below = ConvFeatureExtractor(extractor.stages[:-1]).transform(X) if len(extractor.stages) > 1 else X
    encoder = extractor.stages[-1].encoder
    maps = transform_rows(_Maps(encoder), below)
    return float((maps > 0).mean())


class _Maps(torch.nn.Module):
    def __init__(self, encoder) -> None:
        super().__init__()
        self.encoder, self.n_features = encoder, encoder.n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.maps(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=10000, help="images for the autoencoders and the probe")
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=4, help="epochs of layer 1 (and of layer 2 unless --epochs2)")
    parser.add_argument("--epochs2", type=int, default=6, help="epochs of layer 2")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--maps1", type=int, default=16)
    parser.add_argument("--maps2", type=int, default=64)
    parser.add_argument("--kernel1", type=int, default=7)
    parser.add_argument("--kernel2", type=int, default=5)
    parser.add_argument("--pools1", choices=("disjoint", "window"), default="disjoint",
                        help="pools of maps: disjoint blocks or toroidal 1-D windows (one pool per map)")
    parser.add_argument("--pools2", choices=("disjoint", "window"), default="window")
    parser.add_argument("--pool1", type=int, default=2, help="maps per pool, layer 1")
    parser.add_argument("--pool2", type=int, default=3, help="maps per pool, layer 2")
    parser.add_argument("--corruption1", default=None, help="denoising corruption of layer 1, e.g. masking:0.5")
    parser.add_argument("--corruption2", default="masking:0.5")
    parser.add_argument("--lambda1", type=float, default=0.4)
    parser.add_argument("--lambda2", type=float, default=0.15)
    parser.add_argument("--preprocess", choices=("lcn", "none"), default="lcn",
                        help="local contrast normalization of the input images (both networks see it)")
    parser.add_argument("--lcn-sigma", type=float, default=2.0)
    parser.add_argument("--stage-lcn-sigma", type=float, default=1.0,
                        help="local contrast normalization of layer 1's pooled maps before layer 2")
    parser.add_argument("--spatial-pool", choices=("max", "avg", "none"), default="max")
    parser.add_argument("--probe-max-iter", type=int, default=300)
    parser.add_argument("--probe-C", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    X_train, y_train = load_mnist(split="train")
    X_test, y_test = load_mnist(split="test")
    X_train, y_train = X_train[:args.n_train], y_train[:args.n_train]
    X_test, y_test = X_test[:args.n_test], y_test[:args.n_test]
    if args.preprocess == "lcn":
        X_train = local_contrast_normalize(X_train, (28, 28), sigma=args.lcn_sigma)
        X_test = local_contrast_normalize(X_test, (28, 28), sigma=args.lcn_sigma)
    layers = layer_specs(args)

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    configs = [TrainConfig(optimizer="adam", learning_rate=args.learning_rate, batch_size=args.batch_size,
                           max_epochs=epochs, random_state=args.seed, device=args.device)
               for epochs in (args.epochs, args.epochs2 or args.epochs)]
    result = fit_conv_stack(X_train, layers, configs, image_shape=(28, 28))
    train_seconds = time.perf_counter() - started
    pretrained = result.extractor.cpu()
    for k, res in enumerate(result.results):
        first, last = res.history[0], res.history[-1]
        print(f"layer {k + 1}: loss {first['train_loss']:.3f} → {last['train_loss']:.3f} "
              f"(reconstruction {last['train_reconstruction']:.3f}, group {last['train_group']:.3f}), "
              f"{sum(r['seconds'] for r in res.history):.0f} s")
    torch.manual_seed(args.seed + 1)
    _, random_net = build_conv_stack(784, layers, image_shape=(28, 28))
    networks = {
        "pre-trained, 1 layer": ConvFeatureExtractor(pretrained.stages[:1]),
        "pre-trained, 2 layers": pretrained,
        "random weights, 1 layer": ConvFeatureExtractor(random_net.stages[:1]),
        "random weights, 2 layers": random_net,
    }
    rows = []
    raw = linear_probe(X_train, y_train, X_test, y_test, C=args.probe_C, max_iter=args.probe_max_iter)
    rows.append(("pixels" + (" (LCN)" if args.preprocess == "lcn" else ""), 784, float("nan"), raw["accuracy"]))
    for name, network in networks.items():
        F_train, F_test = network.transform(X_train), network.transform(X_test)
        probe = linear_probe(F_train, y_train, F_test, y_test, C=args.probe_C, max_iter=args.probe_max_iter)
        rows.append((name, network.n_outputs, active_fraction(network, X_test[:1000]), probe["accuracy"]))

    shapes = " → ".join(str(stage.output_shape) for stage in pretrained.stages)
    print(f"\nconv stack on MNIST ({args.preprocess} input): {args.n_train} training images, "
          f"{args.epochs}+{args.epochs2 or args.epochs} epochs ({train_seconds:.0f} s, {args.threads} thread(s)); "
          f"stage outputs {shapes}; probe tested on {args.n_test}")
    print(f"{'features':<26} | {'dims':>5} | {'maps active':>11} | {'probe accuracy':>14}")
    print(f"{'-' * 26}-+-{'-' * 5}-+-{'-' * 11}-+-{'-' * 14}")
    for name, dims, active, accuracy in rows:
        shown = "" if np.isnan(active) else f"{active:.3f}"
        print(f"{name:<26} | {dims:5d} | {shown:>11} | {accuracy:14.4f}")
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
