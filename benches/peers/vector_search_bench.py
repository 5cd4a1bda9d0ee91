"""Peers for BEAR's 100k-vector search benchmark, measured on the same data in the same run:

1. NumPy exact scan: one matrix-vector product over all vectors plus a top-10 selection per
   query. This is the memory-bandwidth floor for exact search.
2. Python lancedb flat search (bypass_vector_index) on BEAR's own table: also proves that the
   tables BEAR writes open and read in another LanceDB client.

Usage: vector_search_bench.py DIR STORE N DIM
  DIR holds vectors.f32 and queries.f32 (little-endian float32, row-major) written by
  `cargo xtask bench rag`; STORE is the collection's LanceDB directory. Prints one JSON object.
"""

import json
import sys
import time

import numpy as np


def p50(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    d, store, n, dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rows = np.fromfile(f"{d}/vectors.f32", dtype="<f4").reshape(n, dim)
    queries = np.fromfile(f"{d}/queries.f32", dtype="<f4").reshape(-1, dim)

    lat = []
    for q in queries:
        t = time.perf_counter()
        scores = rows @ q
        top = np.argpartition(-scores, 10)[:10]
        top = top[np.argsort(-scores[top])]
        lat.append((time.perf_counter() - t) * 1e3)
    numpy_p50 = p50(lat)

    import lancedb

    db = lancedb.connect(store)
    table = db.open_table("chunks")
    rows_seen = table.count_rows()
    docs_seen = db.open_table("documents").count_rows()
    lat = []
    for q in queries[:50]:
        t = time.perf_counter()
        table.search(q).metric("cosine").bypass_vector_index().select(["id"]).limit(10).to_arrow()
        lat.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({
        "numpy_exact_p50_ms": numpy_p50,
        "python_lancedb_flat_p50_ms": p50(lat),
        "python_lancedb_rows": rows_seen,
        "python_lancedb_documents": docs_seen,
        "python_lancedb_version": lancedb.__version__,
    }))


if __name__ == "__main__":
    main()
