"""Turns one of the GGUF test models into a Hugging Face folder that vLLM's CPU build can serve.

Test tooling only (run by scripts/hf-model.sh inside the venv of scripts/vllm-env.sh). Why it is
needed: vLLM's CPU attention only runs head sizes 32, 64, 80, ... and cannot load GGUF on the CPU,
while the test models have 8-wide heads. The widened model computes the same function:

- each 8-wide head is zero-padded to 32. In transformers' rotate-half layout, dimension j of a head
  pairs with j + d/2 and rotates at theta^(-2j/d); old dimension j goes to 4j and j+4 to 4j+16, so
  every used pair keeps its rotary frequency and the padded dimensions stay zero;
- q is multiplied by 2 = sqrt(32/8) so the softmax sees the same scores under 1/sqrt(head_dim);
- v keeps its 8 values in the first 8 of 32, and o reads only those.

Usage: python hf-model.py FILE.gguf OUT_DIR. Checks the widened model's logits against the
original's before it writes anything, and leaves OUT_DIR complete or absent.
"""

import json
import os
import shutil
import sys
import tempfile

import gguf
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

NEW_HEAD_DIM = 32
# ChatML after BOS, which llama-server falls back to for a model without a template, so both render
# a conversation to the same text.
CHATML = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def patched_copy(src: str, work: str) -> str:
    """A copy whose separator/padding ids are valid: transformers' GGUF reader fails on 0xFFFFFFFF."""
    dst = os.path.join(work, os.path.basename(src))
    shutil.copyfile(src, dst)
    reader = gguf.GGUFReader(dst, "r+")
    for key in ("tokenizer.ggml.seperator_token_id", "tokenizer.ggml.padding_token_id"):
        field = reader.fields.get(key)
        if field is not None and int(field.parts[-1][0]) == 0xFFFFFFFF:
            field.parts[-1][0] = 0  # <unk>; neither is used by a llama SPM tokenizer
    del reader
    return dst


def widen_rows(w: torch.Tensor, heads: int, old: int, scale: float = 1.0) -> torch.Tensor:
    """q/k projection rows (heads*old, hidden) to (heads*NEW_HEAD_DIM, hidden) in rotate-half order."""
    hidden = w.shape[1]
    src = w.reshape(heads, old, hidden)
    out = torch.zeros(heads, NEW_HEAD_DIM, hidden, dtype=w.dtype)
    half, step = old // 2, NEW_HEAD_DIM // old
    for j in range(half):
        out[:, step * j] = src[:, j] * scale
        out[:, step * j + NEW_HEAD_DIM // 2] = src[:, j + half] * scale
    return out.reshape(heads * NEW_HEAD_DIM, hidden)


def widen_v(w: torch.Tensor, heads: int, old: int) -> torch.Tensor:
    hidden = w.shape[1]
    out = torch.zeros(heads, NEW_HEAD_DIM, hidden, dtype=w.dtype)
    out[:, :old] = w.reshape(heads, old, hidden)
    return out.reshape(heads * NEW_HEAD_DIM, hidden)


def widen_o(w: torch.Tensor, heads: int, old: int) -> torch.Tensor:
    hidden = w.shape[0]
    out = torch.zeros(hidden, heads, NEW_HEAD_DIM, dtype=w.dtype)
    out[:, :, :old] = w.reshape(hidden, heads, old)
    return out.reshape(hidden, heads * NEW_HEAD_DIM)


def widened(src: LlamaForCausalLM) -> LlamaForCausalLM:
    c = src.config
    old = c.hidden_size // c.num_attention_heads
    cfg = LlamaConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.hidden_size,
        intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads,
        head_dim=NEW_HEAD_DIM,
        max_position_embeddings=c.max_position_embeddings,
        rms_norm_eps=c.rms_norm_eps,
        rope_parameters=c.rope_parameters,
        bos_token_id=c.bos_token_id,
        eos_token_id=c.eos_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    dst = LlamaForCausalLM(cfg).eval()
    sd = {k: v.detach().clone() for k, v in src.state_dict().items()}
    q_scale = (NEW_HEAD_DIM / old) ** 0.5
    for name in list(sd):
        w = sd[name]
        if name.endswith("self_attn.q_proj.weight"):
            sd[name] = widen_rows(w, c.num_attention_heads, old, q_scale)
        elif name.endswith("self_attn.k_proj.weight"):
            sd[name] = widen_rows(w, c.num_key_value_heads, old)
        elif name.endswith("self_attn.v_proj.weight"):
            sd[name] = widen_v(w, c.num_key_value_heads, old)
        elif name.endswith("self_attn.o_proj.weight"):
            sd[name] = widen_o(w, c.num_attention_heads, old)
    if "lm_head.weight" not in sd:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"].clone()
    dst.load_state_dict(sd, strict=True)
    return dst


def tokenize_like_llama_cpp(folder: str, bos: str, bos_id: int) -> None:
    """Makes the GGUF-made tokenizer give llama.cpp's ids and text for the same input.

    llama.cpp's SPM tokenizer always prepends one space and adds BOS; the GGUF-made tokenizer uses
    a Metaspace pre-tokenizer, which skips the space when the text already starts with one ("  a"
    becomes one token fewer), adds no BOS, and strips a leading space when decoding. So: a
    Prepend + Replace normalizer instead (what older Llama tokenizer files do), BOS in the
    post-processor, and no Strip in the decoder.
    """
    path = os.path.join(folder, "tokenizer.json")
    with open(path) as f:
        t = json.load(f)
    t["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ],
    }
    t["pre_tokenizer"] = None
    decoders = t.get("decoder", {}).get("decoders", [])
    t["decoder"]["decoders"] = [d for d in decoders if d.get("type") != "Strip"]
    t["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": bos, "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
    }
    with open(path, "w") as f:
        json.dump(t, f, ensure_ascii=False)


def check_same_function(a: LlamaForCausalLM, b: LlamaForCausalLM, ids: list[int]) -> float:
    with torch.no_grad():
        x = torch.tensor([ids])
        diff = (a(x).logits - b(x).logits).abs().max().item()
    if diff > 1e-3:
        raise SystemExit(f"hf-model: widened logits differ from the original by {diff}")
    return diff


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: hf-model.py FILE.gguf OUT_DIR")
    src_path, out_dir = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="dsd-hf-")
    try:
        gguf_copy = patched_copy(src_path, work)
        name = os.path.basename(gguf_copy)
        tok = AutoTokenizer.from_pretrained(work, gguf_file=name)
        orig = AutoModelForCausalLM.from_pretrained(work, gguf_file=name, dtype=torch.float32).eval()
        wide = widened(orig)
        text = "Once upon a time, there was a little girl"
        ids = [tok.bos_token_id, *tok(text, add_special_tokens=False).input_ids]
        diff = check_same_function(orig, wide, ids)
        tok.chat_template = CHATML
        stage = out_dir + ".partial"
        shutil.rmtree(stage, ignore_errors=True)
        wide.save_pretrained(stage, safe_serialization=True)
        tok.save_pretrained(stage)
        tokenize_like_llama_cpp(stage, tok.bos_token, tok.bos_token_id)
        saved = AutoTokenizer.from_pretrained(stage)
        if saved(text).input_ids != ids:
            raise SystemExit("hf-model: the saved tokenizer does not give BOS + the GGUF tokens")
        with open(os.path.join(stage, "dsd-conversion.json"), "w") as f:
            json.dump({"source": os.path.abspath(src_path), "headDim": NEW_HEAD_DIM, "maxLogitDiff": diff}, f)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.rename(stage, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
