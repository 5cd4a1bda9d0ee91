"""Derives the int8-compute MiniLM graph from the pinned int8 ONNX file (`cargo xtask models`).

The pinned `all-MiniLM-L6-v2-int8/model.onnx` stores its weights as int8 with per-channel
scales, but every MatMul runs in float32 (the weights are cast back to float when the session
starts). This script keeps those weights and makes the arithmetic int8 too:

1. ONNX Runtime's BERT optimizer (basic level: constant folding, so the int8 weights become
   their float values once; then its fusions, here bias + GELU) writes a float graph;
2. ONNX Runtime's dynamic quantizer turns each MatMul with a constant weight into
   MatMulInteger with per-channel int8 weights and activations quantized per call.

Both tools are ONNX Runtime's own (the `onnxruntime` wheel, same version as the pinned
library). Nothing here is downloaded: the input is the verified file, the output is written
next to it by the caller, which checks its sha256.

    python quantize_minilm.py SRC.onnx DST.onnx
"""

import os
import sys
import tempfile

import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model

src, dst = sys.argv[1], sys.argv[2]
with tempfile.TemporaryDirectory() as tmp:
    folded = os.path.join(tmp, "folded.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = folded
    ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])
    fused = os.path.join(tmp, "fused.onnx")
    model = optimize_model(folded, model_type="bert", num_heads=12, hidden_size=384, opt_level=0)
    model.save_model_to_file(fused)
    quantize_dynamic(fused, dst, weight_type=QuantType.QInt8, per_channel=True)
