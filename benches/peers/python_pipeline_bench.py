"""Peer for `cargo xtask bench rag`: the ingestion a few lines of Python do with the usual tools,
on the same files BEAR ingests (8 copies of the demo corpus) and the same model files. Extraction
with pypdf (PDF, page by page), python-docx (DOCX) and BeautifulSoup (HTML), text files read as
UTF-8 or else Latin-1; chunks of 200 tokens with 32 overlapping (BEAR's defaults) by the model's
own tokenizer; sentence-transformers embeds them (batch 32, normalised); Python lancedb stores
text, source, page and vector. BEAR does more per chunk (PII scrubbing, offsets, two-commit
writes, the full-text index), so the comparison leans towards the peer. Prints JSON:
{"documents": n, "chunks": n, "seconds": s, "chunks_per_second": r}.

    ~/.cache/bear/pyref/bin/python benches/peers/python_pipeline_bench.py CORPUS MODEL_DIR THREADS OUT
"""

import json
import pathlib
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

import bs4
import docx
import lancedb
import pypdf

CHUNK, OVERLAP = 200, 32


def pages(path):
    """The document's text, page by page (one page for unpaged formats)."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return [p.extract_text() or "" for p in pypdf.PdfReader(path).pages]
    if suffix == ".docx":
        return ["\n".join(p.text for p in docx.Document(path).paragraphs)]
    if suffix in (".html", ".htm"):
        html = path.read_bytes().decode("utf-8", errors="replace")
        return [bs4.BeautifulSoup(html, "html.parser").get_text("\n")]
    raw = path.read_bytes()
    try:
        return [raw.decode("utf-8")]
    except UnicodeDecodeError:
        return [raw.decode("latin-1")]


def chunks(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    step = CHUNK - OVERLAP
    for start in range(0, max(len(ids) - OVERLAP, 1), step):
        piece = tokenizer.decode(ids[start : start + CHUNK]).strip()
        if piece:
            yield piece


def main(corpus, model_dir, threads, out):
    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    files = sorted(p for p in pathlib.Path(corpus).iterdir() if p.is_file())
    started = time.perf_counter()
    rows = []
    for f in files:
        for n, text in enumerate(pages(f), start=1):
            for piece in chunks(model.tokenizer, text):
                rows.append({"text": piece, "source": str(f), "page": n})
    vectors = model.encode(
        [r["text"] for r in rows], batch_size=32, normalize_embeddings=True
    )
    for r, v in zip(rows, vectors):
        r["vector"] = v.tolist()
    db = lancedb.connect(out)
    db.create_table("chunks", data=rows, mode="overwrite")
    seconds = time.perf_counter() - started
    json.dump(
        {
            "documents": len(files),
            "chunks": len(rows),
            "seconds": seconds,
            "chunks_per_second": len(rows) / seconds,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
