"""The Presidio peer for `cargo xtask bench security`: Presidio's predefined pattern
recognizers (no NER model, as the issue specifies), run over the same corpus BEAR scans.

Prints JSON: throughput (MB/s, single thread) and, per shared entity type, recall and
precision against the corpus labels (a label counts as found when a result of its type
overlaps it; every result counts, whatever its score, which favours Presidio).

usage: presidio_bench.py CORPUS_DIR
"""

import json
import logging
import os
import sys
import time

from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    CryptoRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UrlRecognizer,
    UsSsnRecognizer,
)

# Presidio's entity names for the corpus's types.
TYPES = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "US_SSN": "US_SSN",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP_ADDRESS",
    "URL": "URL",
    "CRYPTO": "CRYPTO",
}


def main():
    # tldextract (used by the URL recognizer) tries to fetch the public suffix list and falls
    # back to its bundled copy; keep that out of the output.
    logging.disable(logging.CRITICAL)
    d = sys.argv[1]
    text = open(os.path.join(d, "corpus.txt")).read()
    labels = [json.loads(l) for l in open(os.path.join(d, "labels.jsonl"))]
    recognizers = [
        EmailRecognizer(),
        PhoneRecognizer(supported_regions=("US", "GB", "DE", "FR", "NL")),
        UsSsnRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
        UrlRecognizer(),
        CryptoRecognizer(),
    ]
    # Warm up (compiles regexes) on a small slice, then time the whole corpus.
    for r in recognizers:
        r.analyze(text[:10000], r.supported_entities, None)
    start = time.perf_counter()
    results = []
    for r in recognizers:
        results += r.analyze(text, r.supported_entities, None)
    seconds = time.perf_counter() - start
    found = [(x.start, x.end, TYPES.get(x.entity_type)) for x in results]
    report = {"mb_per_s": len(text.encode()) / seconds / 1e6, "seconds": seconds, "types": {}}
    for t in sorted(set(TYPES.values())):
        want = [l for l in labels if l["type"] == t]
        got = [f for f in found if f[2] == t]
        hit = sum(1 for l in want if any(s < l["end"] and e > l["start"] for s, e, _ in got))
        correct = sum(1 for s, e, _ in got if any(s < l["end"] and e > l["start"] for l in want))
        report["types"][t] = {
            "labels": len(want),
            "recall": hit / len(want) if want else None,
            "precision": correct / len(got) if got else None,
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
