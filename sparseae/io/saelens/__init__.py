"""SAELens SAE folders, both ways: ``cfg.json`` + ``sae_weights.safetensors`` (+ ``sparsity.safetensors``),
the layout SAELens's ``SAE.load_from_disk`` reads and ``SAE.save_model`` writes (SAELens ≥ 6).

How each convention maps (SAELens ⇔ sparseae):

* weights: ``W_enc`` (d_in, d_sae) = ``encoder.weight`` (d_sae, d_in) transposed; ``b_enc`` (d_sae,) =
  ``encoder.bias``; ``W_dec`` (d_sae, d_in) = ``decoder.weight`` (d_in, d_sae) transposed; ``b_dec``
  (d_in,) = ``decoder.bias``.
* ``architecture``: ``standard`` ⇔ ``sparse_ae_l1`` / ``autoencoder(activation="relu")``; ``topk`` ⇔
  ``topk_sae``; ``jumprelu`` ⇔ ``jumprelu_sae`` (``threshold`` = exp(log_threshold)) and a trained
  BatchTopK ``topk_sae`` (its inference threshold θ on every latent, as SAELens saves its own
  BatchTopK SAEs); a BatchTopK SAE never trained (θ unset) runs per-sample TopK, so it is ``topk``.
* ``apply_b_dec_to_input``: our TopK/BatchTopK/JumpReLU SAEs subtract b_dec before encoding (true),
  the ReLU autoencoders do not (false); imported the other way, ``b_enc`` absorbs ∓ ``b_dec·W_enc``
  (in float64): the same function up to rounding.
* ``rescale_acts_by_decoder_norm`` (topk): folded on import (W_enc·‖W_dec‖, b_enc·‖W_dec‖, W_dec/‖W_dec‖).
  Our decoders are not rescaled: a SAELens decoder's norms are kept as they are (codes stay equal).
* ``normalize_activations``: a run trained with ``data.normalize: l2`` exports as
  ``constant_norm_rescale`` (SAELens scales each input to norm √d_in, ours to 1: the √d_in goes into
  W_enc, W_dec and b_dec; SAELens then returns the reconstruction in the input's own scale, ‖x‖ times
  ours); ``center_l2`` (a training mean subtracted first) has no SAELens form and is refused unless
  ``input_normalization="none"`` says the caller normalizes. On import, ``none`` and
  ``expected_average_only_in`` (which SAELens's SAE applies nowhere at run time) load as they run in
  SAELens; ``constant_norm_rescale`` only from our own export; ``layer_norm`` and
  ``covariance_whitening`` are refused.
* transcoders (``transcoder``: its encoder reads d_in features, its decoder writes ``d_out``): ReLU ⇔
  SAELens ``transcoder``, a trained BatchTopK one ⇔ ``jumprelu_transcoder`` (θ on every latent);
  ``apply_b_dec_to_input`` is false (b_dec lives in the output space); ``constant_norm_rescale``
  folds √d_in into W_enc only (SAELens does not rescale a transcoder's output). Per-sample TopK
  transcoders have no SAELens form.
* penalties (L1, L0, AuxK, groups, inhibition), corruption and code noise act in training only: they
  are dropped. Non-ReLU units, an output non-linearity and inference by optimisation (FISTA sparse
  coding, LISTA, DrSAE...) have no SAELens form: refused with a :class:`~sparseae.errors.ConfigError`.

Round trip: ``cfg.json``'s ``metadata.sparseae`` keeps our model spec and ``sparseae_state.safetensors``
the tensors of our state the SAELens weights do not give back bit for bit (log_threshold, AuxK
counters, folded normalization...). They are used only while the SAELens weights are still the
exported ones (their hash is in the metadata), so ours → SAELens → ours is exact.
"""
from __future__ import annotations

from .export import export_saelens
from .format import (
    ARCHITECTURES,
    CFG_FILE,
    FORMAT_VERSION,
    SPARSITY_EPS,
    SPARSITY_FILE,
    STATE_FILE,
    TRANSCODERS,
    WEIGHTS_FILE,
    is_saelens_folder,
)
from .load import import_saelens, saelens_firing_rates

__all__ = ["ARCHITECTURES", "CFG_FILE", "FORMAT_VERSION", "SPARSITY_EPS", "SPARSITY_FILE", "STATE_FILE",
           "TRANSCODERS", "WEIGHTS_FILE", "export_saelens", "import_saelens", "is_saelens_folder",
           "saelens_firing_rates"]
