"""A tiny byte-level chat tokenizer and a randomly initialised Llama: the smoke model for training code when no
trained weights are on the machine (it learns nothing useful, but every code path runs for real)."""

from __future__ import annotations

from pathlib import Path

SPECIALS = ("<|im_start|>", "<|im_end|>", "<|pad|>")
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_tokenizer():
    """A byte-level tokenizer (one token per byte, so any text encodes) with ChatML special tokens and template;
    ``<|im_end|>`` is the end-of-sequence token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|pad|>",
                                        additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = CHATML
    tokenizer.padding_side = "left"
    return tokenizer


def tiny_llama(tokenizer, *, hidden: int = 64, layers: int = 2, seed: int = 0):
    """A randomly initialised Llama causal LM sized for ``tokenizer`` (a few hundred thousand parameters)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=8192, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def save_tiny_model(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny tokenizer and a random Llama to ``folder`` (``from_pretrained`` loads it)."""
    folder = Path(folder)
    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer, seed=seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
