"""Claim (issue: "faster than SAELens on the same configuration"): a sparseae training step of the
standard L1 SAE and of the TopK SAE (k = 32) at d = 768, 16,384 latents, batch 4,096 takes less
time than SAELens's training step of the same model on the same data and device.

Side by side in one run, on the same random activations already on the device:

* SAELens (``sae_lens``, v6) driven by its own machinery: a ``StandardTrainingSAE`` /
  ``TopKTrainingSAE`` trained by ``SAETrainer.fit()`` with an in-memory data provider (an
  iterator of activation batches, as ``LanguageModelSAETrainingRunner`` feeds it from its
  ``ActivationsStore``). Each timed step is the whole loop iteration of ``fit()``: sparsity-window
  bookkeeping, ``_train_step`` (``training_forward_pass`` under its bf16 autocast, dead-latent
  counters, ``backward``, ``clip_grad_norm_(…, 1.0)``, ``torch.optim.Adam``, the lr scheduler
  and the coefficient schedulers), checkpoint check and progress-bar bookkeeping; wandb logging
  off (``LoggingConfig(log_to_wandb=False)``), no checkpoints, tqdm's bar disabled through
  ``TQDM_DISABLE``. Row "SAELens, eager" is its default; "SAELens, compile_sae" wraps
  ``training_forward_pass`` in ``torch.compile`` exactly as the runner's ``compile_sae`` option
  does (``--saelens-compile-mode`` sets its ``sae_compilation_mode``, e.g. ``max-autotune``).
* sparseae's ``train`` for ``sparse_ae_l1`` and ``topk_sae`` (k = 32) with ``compile`` off, on,
  and on with ``cuda_graph=True`` (and, under autocast, ``bf16_weights``), timed as in
  ``bench_sae_throughput.py``.

Timing: between two synchronizations, after ``--warmup`` steps, over ``--steps`` steps (for
SAELens the data provider synchronizes and reads the clock when ``fit()`` asks for the first
timed batch and for the batch after the last timed step; that one extra step runs untimed).
bf16 autocast on CUDA for both (SAELens's ``autocast=True``; ``--no-amp`` turns it off); float32
weights; no autocast on the CPU.

Matched: sizes, Adam (β = 0.9, 0.999) with the same learning rate (1e-4, constant; SAELens's
"constant" scheduler still steps every iteration), gradient-norm clipping at 1.0 (hard-coded in
SAELens's step; ``--no-clip`` drops it from sparseae only), the L1 weight: sparseae minimises
½‖x − x̂‖² + λ‖z‖₁ per sample, SAELens ‖x − x̂‖² + λ' Σ_j |z_j|·‖W_dec,j‖, so λ' = 2λ (``--l1`` is
sparseae's λ) gives the same objective up to a factor 2 (irrelevant to Adam) while the decoder
rows have unit norm. The standard SAE gets ``apply_b_dec_to_input=False`` so both L1 models
encode x itself, as ``sparse_ae_l1`` does; the TopK models both subtract b_dec first.

Remaining differences a reader must know:

* Decoder norms. sparseae keeps unit-norm decoder columns (the gradient projected onto the
  sphere's tangent before the step, the columns renormalized after it). SAELens does not
  constrain them: its L1 penalty is weighted by the decoder row norms, and its TopK SAE
  (``rescale_acts_by_decoder_norm=True``, its default) multiplies the pre-activations by the
  norms before TopK and divides the codes by them before decoding; ‖W_dec‖ is recomputed in each
  forward. Same invariance, different work per step. SAELens initialises decoder rows at norm
  0.1 (``decoder_init_norm``), sparseae at 1; this does not change the cost of a step.
* TopK auxiliary loss. SAELens's ``TopKTrainingSAE`` always has its AuxK loss (coefficient 1,
  k_aux = d/2, dead after ``dead_feature_window`` = 1000 steps); it asks the host whether any
  latent is dead (one synchronization per step) and skips the loss when none is, which is the
  case in a run this short. sparseae's ``topk_sae`` runs here with ``aux_weight=0`` (as in
  ``bench_sae_throughput.py``), i.e. without it; ``--auxk`` turns sparseae's AuxK on
  (α = 1/32, k_aux = d/2, dead after 1000 batches), which sparseae computes every step without
  a host synchronization, so it then does more work than SAELens does here.
* SAELens's step has further host synchronizations of its own (boolean-mask indexing of its
  dead-latent counter), and its Adam is PyTorch's default (foreach) implementation; sparseae's
  Adam is fused on CUDA (foreach, compiled into the update, with ``compile``).
* The loss values differ by the factor 2 above and by the different parameterization, so the
  two runs' weights are not comparable step by step; only the time is.

    python benchmarks/bench_vs_saelens.py [--d 768 --latents 16384 --batch 4096 --steps 50]
    python benchmarks/bench_vs_saelens.py --d 128 --latents 1024 --batch 512 --steps 20 --warmup 5 --threads 1
"""
from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: SAELens's progress bar off

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from bench_sae_throughput import LEARNING_RATE, add_problem_arguments, synchronize, time_train  # noqa: E402  (run as a script: benchmarks/ is on sys.path)

from sparseae.models import create_model  # noqa: E402

try:
    import sae_lens
    from sae_lens import (
        SAETrainer,
        StandardTrainingSAE,
        StandardTrainingSAEConfig,
        TopKTrainingSAE,
        TopKTrainingSAEConfig,
    )
    from sae_lens.config import LoggingConfig, SAETrainerConfig
except ImportError as exc:  # pragma: no cover - depends on the environment
    sae_lens = None
    SAE_LENS_ERROR = exc

DEAD_FEATURE_WINDOW = 1000  # SAELens's default, in steps


class TimedBatches:
    """SAELens's data provider: cycles through the ``batch``-row slices of ``X`` (already on the
    device). It synchronizes and reads the clock when ``fit()`` asks for batch ``start`` (the
    first timed step) and for batch ``stop`` (the step after the last timed one)."""

    def __init__(self, X: torch.Tensor, batch: int, start: int, stop: int) -> None:
        self.X, self.batch, self.start, self.stop = X, batch, start, stop
        self.n_batches = X.shape[0] // batch
        self.calls = 0
        self.began = self.ended = None

    def __iter__(self) -> TimedBatches:
        return self

    def __next__(self) -> torch.Tensor:
        i = self.calls
        self.calls += 1
        if i == self.start:
            synchronize(self.X.device)
            self.began = time.perf_counter()
        elif i == self.stop:
            synchronize(self.X.device)
            self.ended = time.perf_counter()
        j = i % self.n_batches
        return self.X[j * self.batch:(j + 1) * self.batch]


def uses_amp(device: torch.device, args) -> bool:
    return device.type == "cuda" and args.amp


def time_saelens(X: torch.Tensor, args, k: int | None, compiled: bool) -> float:
    """ms per step of ``SAETrainer.fit()`` on a StandardTrainingSAE (k None) or TopKTrainingSAE."""
    device = X.device
    torch.manual_seed(0)
    d = X.shape[1]
    if k is None:
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(
            d_in=d, d_sae=args.latents, l1_coefficient=2 * args.l1, apply_b_dec_to_input=False,
            dtype="float32", device=str(device)))
    else:
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=args.latents, k=k, dtype="float32",
                                                    device=str(device)))
    if compiled:  # as LanguageModelSAETrainingRunner._compile_sae_if_needed
        sae.training_forward_pass = torch.compile(sae.training_forward_pass, mode=args.saelens_compile_mode,
                                                  backend="inductor")
    n_steps = args.warmup + args.steps + 1  # the last one untimed: the clock stops when it asks for data
    config = SAETrainerConfig(
        total_training_samples=n_steps * args.batch, train_batch_size_samples=args.batch, lr=LEARNING_RATE,
        lr_end=LEARNING_RATE / 10, lr_scheduler_name="constant", adam_beta1=0.9, adam_beta2=0.999,
        device=str(device), autocast=uses_amp(device, args), dead_feature_window=DEAD_FEATURE_WINDOW,
        feature_sampling_window=2000, n_checkpoints=0, checkpoint_path=None, save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False))
    provider = TimedBatches(X, args.batch, args.warmup, args.warmup + args.steps)
    trainer = SAETrainer(cfg=config, sae=sae, data_provider=provider)
    trainer.fit()
    if provider.ended is None:
        raise RuntimeError(f"SAETrainer.fit() asked for {provider.calls} batches, fewer than {n_steps}")
    return 1e3 * (provider.ended - provider.began) / args.steps


def time_sparseae(X: torch.Tensor, args, k: int | None, compiled: bool, graphed: bool = False,
                  bf16_weights: bool = False) -> float:
    """ms per step of ``sparseae.train.train`` (bench_sae_throughput's timing, with SAELens's
    gradient clipping and, with ``--auxk``, the TopK SAE's AuxK loss)."""
    torch.manual_seed(0)
    d = X.shape[1]
    if k is None:
        model = create_model("sparse_ae_l1", d, args.latents, sparsity_weight=args.l1)
    elif args.auxk:
        model = create_model("topk_sae", d, args.latents, k=k, aux_weight=1.0 / 32, k_aux=d // 2,
                             dead_after=DEAD_FEATURE_WINDOW * args.batch)
    else:
        model = create_model("topk_sae", d, args.latents, k=k, aux_weight=0.0)
    return time_train(model, X, args, compiled, graphed=graphed, bf16_weights=bf16_weights,
                      grad_clip=args.grad_clip)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_problem_arguments(parser, steps=50, warmup=10)
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip the compiled variants (SAELens compile_sae, sparseae compile)")
    parser.add_argument("--no-graph", dest="graph", action="store_false", help="skip sparseae's CUDA-graph variants")
    parser.add_argument("--saelens-compile-mode", default=None,
                        help="SAELens's sae_compilation_mode for the compile_sae row (default: torch.compile's)")
    parser.add_argument("--no-clip", dest="grad_clip", action="store_const", const=None, default=1.0,
                        help="sparseae without gradient clipping (SAELens always clips at 1.0)")
    parser.add_argument("--auxk", action="store_true", help="sparseae's TopK SAE with its AuxK loss on")
    args = parser.parse_args()
    if sae_lens is None:
        sys.exit(f"sae_lens is not importable ({type(SAE_LENS_ERROR).__name__}: {SAE_LENS_ERROR}); "
                 "install sae-lens to run this comparison")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n_rows = args.batch * min(args.warmup + args.steps, 64)
    torch.manual_seed(1234)
    X = torch.randn(n_rows, args.d, device=device)

    saelens_modes = [("eager", False)] + ([("compile_sae", True)] if args.compile else [])
    ours_modes = [("eager", False, False, False)]
    if args.compile:
        ours_modes.append(("compiled", True, False, False))
    if args.compile and args.graph and device.type == "cuda":
        ours_modes.append(("graph", True, True, False))  # compiled, the whole step in one CUDA graph
        if uses_amp(device, args):
            ours_modes.append(("graph, bf16 copies", True, True, True))
    models = [("L1", None), (f"TopK k={args.k}", args.k)]
    if args.only:
        models = [m for m in models if m[0].startswith(args.only)]

    rows = []
    for name, k in models:
        for mode, compiled in saelens_modes:
            ms = time_saelens(X, args, k, compiled)
            rows.append((name, f"SAELens {sae_lens.__version__}, {mode}", ms))
            print(f"{name:<10} SAELens  {mode:<20} {ms:9.3f} ms/step", flush=True)
        for mode, compiled, graphed, bf16 in ours_modes:
            try:  # one failing variant (e.g. a step that cannot be captured) must not lose the others
                ms = time_sparseae(X, args, k, compiled, graphed, bf16)
            except Exception as exc:  # noqa: BLE001 - reported, then the next variant runs
                print(f"{name:<10} sparseae {mode:<20} failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            rows.append((name, f"sparseae, {mode}", ms))
            print(f"{name:<10} sparseae {mode:<20} {ms:9.3f} ms/step", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print()
    print(f"SAELens {sae_lens.__version__}: SAETrainer.fit() (eager; compile_sae: training_forward_pass under "
          f"torch.compile{', mode ' + args.saelens_compile_mode if args.saelens_compile_mode else ''}); "
          "sparseae: train() (eager; compiled; graph = compiled + the whole step in one CUDA graph)")
    head_eager, head_comp = "SAELens eager / this", "SAELens compile_sae / this"
    print(f"{'model':<10} | {'implementation':<36} | {'ms/step':>9} | {head_eager:>20} | {head_comp:>26}")
    for name, impl, ms in rows:
        ref = {mode: r[2] for r in rows if r[0] == name and r[1].startswith("SAELens")
               for mode in [r[1].rsplit(", ", 1)[1]]}
        eager = f"{ref['eager'] / ms:.2f}×"
        comp = f"{ref['compile_sae'] / ms:.2f}×" if "compile_sae" in ref else "-"
        print(f"{name:<10} | {impl:<36} | {ms:9.3f} | {eager:>20} | {comp:>26}")
    amp = "bf16 autocast, float32 weights" if uses_amp(device, args) else "float32, no autocast"
    print(f"(d = {args.d}, {args.latents} latents, batch {args.batch}, k = {args.k}, {args.steps} timed steps after "
          f"{args.warmup}; device {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"{torch.get_num_threads()} CPU threads; {amp}; Adam lr {LEARNING_RATE:g}; sparseae λ = {args.l1:g}, "
          f"SAELens l1_coefficient = {2 * args.l1:g}; grad clip {args.grad_clip} for sparseae, 1.0 for SAELens; "
          f"sparseae TopK AuxK {'on' if args.auxk else 'off'}; torch {torch.__version__}; "
          "ratio > 1: this row is faster than that SAELens row)")


if __name__ == "__main__":
    main()
