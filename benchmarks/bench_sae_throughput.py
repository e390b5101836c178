"""Claim: a sparseae training step of an activation-scale SAE is at least as fast as a plain
hand-written PyTorch loop of the same model, eager or compiled (goal on an H100 at d = 768,
16,384 latents, batch 4,096: ≤ 1.2 ms per L1 step, ≥ 1.5× the compiled hand-written loop).

Side by side in one run, for the L1 SAE (ReLU codes, λ‖z‖₁, unit-norm decoder columns) and the
TopK SAE (k = 32; also with the sparse decoder, which decodes from the k active latents only):
a hand-written loop (forward, loss, backward, Adam, decoder renormalization) in
eager mode, under ``torch.compile``, and compiled with the whole step captured in a CUDA graph by
hand (PyTorch's recipe), against ``sparseae.train.train`` with ``compile`` off, on, and on with
``cuda_graph=True`` (and, under autocast, with ``bf16_weights``: the step runs on bf16 copies of
the weight matrices written by the update, no casts). bf16 autocast on CUDA (``--no-amp`` turns
it off), data already on the device, timing between two synchronizations after ``--warmup``
steps. Prints ms/step and the ratio to the compiled hand-written loop.

    python benchmarks/bench_sae_throughput.py [--d 768 --latents 16384 --batch 4096 --steps 100]
    python benchmarks/bench_sae_throughput.py --d 128 --latents 1024 --batch 512 --steps 20   # CPU-sized
"""
from __future__ import annotations

import argparse
import time
from unittest import mock

import torch

from sparseae.models import create_model
from sparseae.train import Callback, TrainConfig, optim, train

LEARNING_RATE = 1e-4  # Adam, both loops


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class HandWrittenSAE(torch.nn.Module):
    """What a user writes, the same functions as sparseae's models: x̂ = W_d z + b_d with
    z = ReLU(W_e x + b_e) (``sparse_ae_l1``) or z = TopK(ReLU(W_e (x − b_d) + b_e)) (``topk_sae``)."""

    def __init__(self, d: int, m: int, k: int | None) -> None:
        super().__init__()
        W = torch.randn(d, m)
        W /= W.norm(dim=0, keepdim=True)
        self.W_dec = torch.nn.Parameter(W.clone())                  # (d, m), unit columns
        self.W_enc = torch.nn.Parameter(W.t().clone())              # (m, d)
        self.b_enc = torch.nn.Parameter(torch.zeros(m))
        self.b_dec = torch.nn.Parameter(torch.zeros(d))
        self.k = k

    def loss(self, x: torch.Tensor, l1: float) -> torch.Tensor:
        centred = x if self.k is None else x - self.b_dec
        pre = torch.relu(centred @ self.W_enc.t() + self.b_enc)
        if self.k is None:
            z = pre
            sparsity = l1 * z.abs().sum(-1).mean()
        else:
            values, indices = pre.topk(self.k, dim=-1)
            z = torch.zeros_like(pre).scatter(-1, indices, values)
            sparsity = 0.0
        x_hat = z @ self.W_dec.t() + self.b_dec
        return 0.5 * (x_hat - x).pow(2).sum(-1).mean() + sparsity


def time_hand_written(X: torch.Tensor, args, k: int | None, compiled: bool, graphed: bool = False) -> float:
    device = X.device
    torch.manual_seed(0)
    model = HandWrittenSAE(X.shape[1], args.latents, k).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, fused=device.type == "cuda" or None,
                                 capturable=graphed)
    loss_of = torch.compile(model.loss) if compiled else model.loss
    amp = device.type == "cuda" and args.amp

    def step(x: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp, cache_enabled=not graphed):
            loss = loss_of(x, args.l1)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.W_dec.div_(model.W_dec.norm(dim=0, keepdim=True).clamp_min(1e-12))

    if graphed:  # PyTorch's whole-network recipe: warm up on a side stream, capture, replay
        static_x = X[:args.batch].clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step(static_x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            step(static_x)

        def step(x: torch.Tensor) -> None:  # noqa: F811
            static_x.copy_(x)
            graph.replay()

    n_batches = X.shape[0] // args.batch
    for i in range(args.warmup):
        step(X[(i % n_batches) * args.batch:(i % n_batches + 1) * args.batch])
    synchronize(device)
    started = time.perf_counter()
    for i in range(args.steps):
        step(X[(i % n_batches) * args.batch:(i % n_batches + 1) * args.batch])
    synchronize(device)
    return 1e3 * (time.perf_counter() - started) / args.steps


class StepTimer(Callback):
    """Wall time between the end of step ``start`` and the end of step ``stop`` (synchronized)."""

    def __init__(self, device: torch.device, start: int, stop: int) -> None:
        self.device, self.start, self.stop = device, start, stop
        self.began = self.ended = None

    def on_step(self, step: int, model) -> None:
        if step == self.start:
            synchronize(self.device)
            self.began = time.perf_counter()
        elif step == self.stop:
            synchronize(self.device)
            self.ended = time.perf_counter()


def time_sparseae(X: torch.Tensor, args, k: int | None, compiled: bool, sparse_decode: bool = False,
                  graphed: bool = False, bf16_weights: bool = False) -> float:
    torch.manual_seed(0)
    if k is None:
        model = create_model("sparse_ae_l1", X.shape[1], args.latents, sparsity_weight=args.l1)
    else:
        model = create_model("topk_sae", X.shape[1], args.latents, k=k, aux_weight=0.0, sparse_decode=sparse_decode)
    return time_train(model, X, args, compiled, graphed=graphed, bf16_weights=bf16_weights)


def time_train(model: torch.nn.Module, X: torch.Tensor, args, compiled: bool, *, graphed: bool = False,
               bf16_weights: bool = False, **settings) -> float:
    """ms per step of ``sparseae.train.train`` on ``model`` (Adam lr 1e-4, batches of ``args.batch``
    in order, bf16 autocast on CUDA unless ``--no-amp``), timed between synchronizations after
    ``args.warmup`` steps over ``args.steps``; ``settings``: further TrainConfig fields."""
    device = X.device
    timer = StepTimer(device, args.warmup, args.warmup + args.steps)
    n_batches = X.shape[0] // args.batch
    epochs = -(-(args.warmup + args.steps) // n_batches)
    config = TrainConfig(optimizer="adam", learning_rate=LEARNING_RATE, batch_size=args.batch, max_epochs=epochs,
                         device=str(device), amp=device.type == "cuda" and args.amp, compile=compiled,
                         shuffle=False, cuda_graph=graphed, bf16_weights=bf16_weights, **settings)
    train(model, X, config, callbacks=[timer])
    return 1e3 * (timer.ended - timer.began) / args.steps


def add_problem_arguments(parser: argparse.ArgumentParser, *, steps: int, warmup: int) -> None:
    """The issue's configuration (d 768, 16,384 latents, batch 4,096, TopK k 32, L1 λ 5e-3), the
    timed and warm-up step counts, and the switches both SAE throughput benchmarks share."""
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--latents", type=int, default=16384)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--l1", type=float, default=5e-3, help="sparseae's λ (SAELens gets l1_coefficient = 2λ)")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    parser.add_argument("--only", choices=("L1", "TopK"), default=None, help="one model only")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_problem_arguments(parser, steps=100, warmup=20)
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the compiled variants")
    parser.add_argument("--no-graph", dest="graph", action="store_false", help="skip the CUDA-graph variants")
    parser.add_argument("--eager-update", action="store_true",
                        help="add graphed sparseae rows whose update (projection, fused Adam, constraints) "
                             "is not compiled")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n_rows = args.batch * min(args.warmup + args.steps, 64)
    X = torch.randn(n_rows, args.d, device=device)

    modes = [("eager", False, False)]
    if args.compile:
        modes.append(("compiled", True, False))
    if args.compile and args.graph and device.type == "cuda":
        modes.append(("graph", True, True))  # compiled, the whole step in one CUDA graph
    models = [("L1", None), (f"TopK k={args.k}", args.k)]
    if args.only:
        models = [m for m in models if m[0].startswith(args.only)]
    rows = []

    def measure(name: str, loop: str, label: str, mode: str, run) -> None:
        """Time ``run()`` into ``rows``; a variant that fails (e.g. a step that cannot be captured)
        is reported and skipped so that the others still run."""
        try:
            ms = run()
        except Exception as exc:  # noqa: BLE001 - reported, then the next variant runs
            print(f"{name:<10} {label:<12} {mode:<8} failed: {type(exc).__name__}: {exc}", flush=True)
            return
        rows.append((name, f"{loop}, {mode}", ms))
        print(f"{name:<10} {label:<12} {mode:<8} {ms:8.3f} ms/step", flush=True)

    for name, k in models:
        for mode, compiled, graphed in modes:
            measure(name, "hand-written", "hand-written", mode,
                    lambda: time_hand_written(X, args, k, compiled, graphed))
            measure(name, "sparseae", "sparseae", mode, lambda: time_sparseae(X, args, k, compiled, graphed=graphed))
            if compiled and device.type == "cuda" and args.amp:
                measure(name, "sparseae bf16 copies", "bf16 copies", mode,
                        lambda: time_sparseae(X, args, k, compiled, graphed=graphed, bf16_weights=True))
            if graphed and args.eager_update:
                with mock.patch.object(optim, "compiles_update", lambda config, device: False):
                    measure(name, "sparseae eager-upd.", "eager update", mode,  # fused Adam, uncompiled
                            lambda: time_sparseae(X, args, k, compiled, graphed=graphed))
            if k is not None and not graphed:
                measure(name, "sparseae sparse-dec", "sparse decode", mode,
                        lambda: time_sparseae(X, args, k, compiled, True))
    print()
    print("modes: eager; compiled (torch.compile); graph (compiled + the whole step in one CUDA graph)")
    print(f"{'model':<10} | {'loop':<28} | {'ms/step':>8} | {'vs hand-written, same mode':>26} | "
          f"{'vs compiled hand-written':>24}")
    for name, loop, ms in rows:
        same = [r[2] for r in rows if r[0] == name and r[1] == "hand-written, " + loop.split(", ")[1]]
        compiled = [r[2] for r in rows if r[0] == name and r[1] == "hand-written, compiled"]
        print(f"{name:<10} | {loop:<28} | {ms:8.3f} | {(f'{same[0] / ms:.2f}×' if same else '-'):>26} | "
              f"{(f'{compiled[0] / ms:.2f}×' if compiled else '-'):>24}")
    print(f"(d = {args.d}, {args.latents} latents, batch {args.batch}, {args.steps} timed steps after "
          f"{args.warmup}; device {device}{', bf16 autocast' if device.type == 'cuda' and args.amp else ''}; "
          f"ratio > 1: faster than the compiled hand-written loop)")


if __name__ == "__main__":
    main()
