"""Peer for `cargo xtask bench models`: Python sentence-transformers (PyTorch, CPU) embedding the
same texts as benches/benches/models.rs, with the same model files. Prints JSON:
{"b1_t32": sentences_per_second, ...}.

    ~/.cache/bear/pyref/bin/python benches/peers/sentence_transformers_bench.py MODEL_DIR THREADS
"""

import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

WORDS = (
    "the parties agree that any dispute arising out of this agreement shall be "
    "referred to arbitration in amsterdam under the rules then in force"
).split(" ")


def texts(n, tokens):
    return [
        " ".join(WORDS[(i + j) % len(WORDS)] for j in range(max(tokens - 2, 0)))
        for i in range(n)
    ]


torch.set_num_threads(int(sys.argv[2]))
model = SentenceTransformer(sys.argv[1], device="cpu")
results = {}
for tokens in (32, 128, 256):
    for batch in (1, 32):
        inp = texts(batch, tokens)
        model.encode(inp, batch_size=batch)  # warm-up
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < 3.0:
            model.encode(inp, batch_size=batch, normalize_embeddings=True)
            runs += 1
        elapsed = time.perf_counter() - start
        results[f"b{batch}_t{tokens}"] = runs * batch / elapsed
json.dump(results, sys.stdout)
