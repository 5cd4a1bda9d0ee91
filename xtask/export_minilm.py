"""Writes the fused float32 MiniLM graph from the model's own safetensors (`cargo xtask models`).

sentence-transformers' all-MiniLM-L6-v2 is a 6-layer BERT (hidden 384, 12 heads). This script
reads its `model.safetensors` with numpy and writes the ONNX graph ONNX Runtime's BERT optimizer
aims for, built directly from ONNX Runtime's fused contrib operators, so no exporter (PyTorch)
and no pattern matching is involved and every fusion is there by construction:

- `EmbedLayerNormalization`: word + position + token type embeddings and their layer norm,
  and the mask turned into per-row token counts;
- per layer `Attention` (one [384, 1152] QKV projection, scaled dot product over 12 heads,
  the padding mask), `MatMul` for the output projection, `SkipLayerNormalization` (bias,
  residual and layer norm in one), `MatMul` + `BiasGelu` (the exact, erf GELU BERT uses),
  `MatMul`, `SkipLayerNormalization`.

Weights stay float32, as the safetensors hold them; mean pooling and normalisation are
BEAR's (the graph outputs `last_hidden_state`). Inputs are int64 `input_ids`,
`attention_mask` and `token_type_ids`, right-padded, as BEAR's tokenizer produces them.

    python export_minilm.py model.safetensors DST.onnx
"""

import json
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN, HEADS, LAYERS = 384, 12, 6
EPS = 1e-12
MS = "com.microsoft"


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        kind = {"F32": np.float32, "I64": np.int64}[meta["dtype"]]
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=kind).reshape(meta["shape"])
    return out


def main(src, dst):
    w = load_safetensors(src)
    inits, nodes = [], []

    def init(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op, inputs, outputs, domain="", **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, domain=domain, **attrs))
        return outputs[0]

    ids = node("Cast", ["input_ids"], ["ids32"], to=TensorProto.INT32)
    types = node("Cast", ["token_type_ids"], ["types32"], to=TensorProto.INT32)
    mask = node("Cast", ["attention_mask"], ["mask32"], to=TensorProto.INT32)
    e = "embeddings."
    x = node(
        "EmbedLayerNormalization",
        [
            ids,
            types,
            init("word", w[e + "word_embeddings.weight"]),
            init("position", w[e + "position_embeddings.weight"]),
            init("segment", w[e + "token_type_embeddings.weight"]),
            init("emb_gamma", w[e + "LayerNorm.weight"]),
            init("emb_beta", w[e + "LayerNorm.bias"]),
            mask,
        ],
        ["emb", "mask_index"],
        domain=MS,
        epsilon=EPS,
    )
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        s = p + "attention.self."
        qkv_w = np.concatenate(
            [w[s + "query.weight"].T, w[s + "key.weight"].T, w[s + "value.weight"].T], axis=1
        )
        qkv_b = np.concatenate([w[s + "query.bias"], w[s + "key.bias"], w[s + "value.bias"]])
        att = node(
            "Attention",
            [x, init(f"l{i}_qkv_w", qkv_w), init(f"l{i}_qkv_b", qkv_b), "mask_index"],
            [f"l{i}_att"],
            domain=MS,
            num_heads=HEADS,
        )
        o = p + "attention.output."
        proj = node("MatMul", [att, init(f"l{i}_ao_w", w[o + "dense.weight"].T)], [f"l{i}_ao"])
        x1 = node(
            "SkipLayerNormalization",
            [
                proj,
                x,
                init(f"l{i}_ln1_g", w[o + "LayerNorm.weight"]),
                init(f"l{i}_ln1_b", w[o + "LayerNorm.bias"]),
                init(f"l{i}_ao_b", w[o + "dense.bias"]),
            ],
            [f"l{i}_x1"],
            domain=MS,
            epsilon=EPS,
        )
        up = node(
            "MatMul", [x1, init(f"l{i}_in_w", w[p + "intermediate.dense.weight"].T)], [f"l{i}_up"]
        )
        act = node(
            "BiasGelu",
            [up, init(f"l{i}_in_b", w[p + "intermediate.dense.bias"])],
            [f"l{i}_gelu"],
            domain=MS,
        )
        down = node("MatMul", [act, init(f"l{i}_out_w", w[p + "output.dense.weight"].T)], [f"l{i}_dn"])
        last = i == LAYERS - 1
        x = node(
            "SkipLayerNormalization",
            [
                down,
                x1,
                init(f"l{i}_ln2_g", w[p + "output.LayerNorm.weight"]),
                init(f"l{i}_ln2_b", w[p + "output.LayerNorm.bias"]),
                init(f"l{i}_out_b", w[p + "output.dense.bias"]),
            ],
            ["last_hidden_state" if last else f"l{i}_x2"],
            domain=MS,
            epsilon=EPS,
        )

    batch = ["batch", "sequence"]
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2-fused",
        [helper.make_tensor_value_info(n, TensorProto.INT64, batch) for n in
         ("input_ids", "attention_mask", "token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, batch + [HIDDEN])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)],
        producer_name="bear xtask export_minilm.py",
    )
    model.ir_version = 8
    onnx.save(model, dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
