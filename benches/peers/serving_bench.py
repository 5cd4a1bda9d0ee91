"""Concurrent streams against an OpenAI-compatible server (bear-server or llama-server).

Usage: serving_bench.py BASE_URL KEY MODEL STREAMS MAX_TOKENS ROUNDS
       serving_bench.py BASE_URL KEY MODEL prefix

With a stream count: STREAMS chat completions at once, each streaming MAX_TOKENS tokens from
its own prompt, ROUNDS times; prints JSON with the aggregate generated tokens per second (the
completion tokens the server reports, over the wall time of the round) and each stream's time
to first token (p50, p99, in ms). With `prefix`: pairs of completions sharing a ~1,000-token
prefix, one token each; prints the second request's time to first token and how many prompt
tokens the server says it processed.

Standard library only, so the same client drives both servers.
"""

import json
import statistics
import sys
import threading
import time
import urllib.request


def post(base, key, path, body):
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = "Bearer " + key
    req = urllib.request.Request(base + path, json.dumps(body).encode(), headers)
    return urllib.request.urlopen(req, timeout=600)


def one_stream(base, key, model, prompt, max_tokens, out):
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        # Both servers' extension; the same penalty on both sides (llama-server's default).
        "repeat_penalty": 1.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = None
    tokens = 0
    with post(base, key, "/v1/chat/completions", body) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            for choice in chunk.get("choices") or []:
                if first is None and (choice.get("delta") or {}).get("content"):
                    first = time.perf_counter() - start
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    out.append((first if first is not None else float("nan"), tokens))


def streams(base, key, model, n, max_tokens, rounds):
    rates, ttfts, counts = [], [], []
    # A fresh nonce per run, so no result cache answers a prompt from an earlier run.
    nonce = time.time_ns() % 1_000_000_007
    for r in range(rounds):
        out = []
        threads = [
            threading.Thread(
                target=one_stream,
                args=(
                    base,
                    key,
                    model,
                    f"List {nonce}-{r}-{i}: count from {100 * i + 7 * r} to 1000, separated by commas.",
                    max_tokens,
                    out,
                ),
            )
            for i in range(n)
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        total = sum(tok for _, tok in out)
        rates.append(total / wall)
        counts.append(total)
        ttfts.extend(1000 * f for f, _ in out)
    ttfts.sort()
    p99 = ttfts[min(len(ttfts) - 1, int(round(0.99 * (len(ttfts) - 1))))]
    return {
        "streams": n,
        "tokens_per_second": statistics.mean(rates),
        "rounds": rates,
        "tokens": counts,
        "ttft_p50_ms": statistics.median(ttfts),
        "ttft_p99_ms": p99,
    }


def prefix(base, key, model):
    text = open(sys.argv[5] if len(sys.argv) > 5 else "examples/corpus/supply-agreement.txt").read()
    text = (text * 4)[:5200]
    rows = []
    for i in range(6):
        def ask(q):
            body = {
                "model": model,
                "messages": [{"role": "user", "content": text + "\n\n" + q}],
                "max_tokens": 1,
                "temperature": 0,
                "repeat_penalty": 1.0,
            }
            start = time.perf_counter()
            with post(base, key, "/v1/chat/completions", body) as r:
                v = json.load(r)
            ms = 1000 * (time.perf_counter() - start)
            usage = v.get("usage") or {}
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            timings = v.get("timings") or {}
            processed = timings.get("prompt_n")
            if processed is None and cached is not None:
                processed = usage["prompt_tokens"] - cached
            return ms, processed, usage.get("prompt_tokens")

        ask(f"Question {i}a ({time.time_ns()}): who supplies the goods?")
        ms, processed, total = ask(f"Question {i}b ({time.time_ns()}): when is payment due?")
        rows.append({"second_ms": ms, "processed": processed, "prompt_tokens": total})
    return {
        "second_ms_median": statistics.median(r["second_ms"] for r in rows),
        "rows": rows,
    }


def main():
    base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    if sys.argv[4] == "prefix":
        print(json.dumps(prefix(base, key, model)))
    else:
        n, max_tokens, rounds = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        print(json.dumps(streams(base, key, model, n, max_tokens, rounds)))


if __name__ == "__main__":
    main()
