"""Writes the PII benchmark corpus: ~10 MB of legal prose with about 1% PII, and its labels.

Deterministic (fixed seed), ASCII only (so byte and character offsets agree), standard library
only. Every inserted value is valid for its type (Luhn, mod-97, SSA ranges, Base58Check), so a
detector's recall is measured against things a careful reviewer would also flag.

usage: pii_corpus.py OUTDIR [MEGABYTES]
writes OUTDIR/corpus.txt, OUTDIR/labels.jsonl ({"start","end","type"} per line) and
OUTDIR/message.txt (a ~200-byte chat message).
"""

import json
import os
import random
import sys

PROSE = [
    "The parties agree that this agreement shall be governed by the laws of the Netherlands.",
    "Any dispute arising out of or in connection with it shall be submitted to the competent court.",
    "The tenant shall keep the premises in good repair and return them in the same condition.",
    "Notwithstanding the foregoing, neither party shall be liable for indirect or consequential loss.",
    "The court adjourned the hearing to allow the parties to file further written submissions.",
    "Counsel argued that the limitation period had expired before the claim was brought.",
    "The licensor grants a non-exclusive, non-transferable licence for the term of this agreement.",
    "All notices under this agreement shall be in writing and delivered by hand or registered mail.",
    "The board resolved to approve the accounts for the financial year and to declare a dividend.",
    "It is common ground that the contract was concluded on the terms set out in the schedule.",
    "The witness stated that she had not seen the document before the meeting in question.",
    "Payment shall be made within thirty days of the date of the invoice without set-off.",
    "This clause survives termination of the agreement for a period of five years.",
    "The judge found that the defendant had acted in breach of its duty of care.",
    "Section 4.2 of the code applies only where the conditions in section 3 are met.",
    "In 2019 the company reported revenue of 150 million euros across 12 markets.",
    "The meeting on 14 March 2021 was attended by 23 shareholders and 4 directors.",
    "Schedule 2 lists the assets transferred, including 35 vehicles and 2 warehouses.",
]

FIRST = ["John", "Jane", "Pieter", "Anna", "Mark", "Sophie", "Thomas", "Emma", "Lucas", "Julia"]
LAST = ["Smith", "Jansen", "de Vries", "Brown", "Bakker", "Miller", "Visser", "Taylor", "Meijer"]
DOMAINS = ["example.com", "lawfirm.nl", "mail.co.uk", "client-corp.de", "post.fr"]
BTC = [
    "1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
]


def luhn_complete(prefix, length, rnd):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(rnd.randrange(10))
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    digits.append((10 - total % 10) % 10)
    return "".join(map(str, digits))


def card(rnd):
    kind = rnd.randrange(3)
    if kind == 0:
        n = luhn_complete("4", 16, rnd)
    elif kind == 1:
        n = luhn_complete(str(rnd.randrange(51, 56)), 16, rnd)
    else:
        n = luhn_complete(rnd.choice(["34", "37"]), 15, rnd)
        return rnd.choice([n, n[:4] + " " + n[4:10] + " " + n[10:]])
    sep = rnd.choice(["", " ", "-"])
    return sep.join(n[i:i + 4] for i in range(0, 16, 4))


def iban(rnd):
    country, length = rnd.choice([("NL", 18), ("DE", 22), ("GB", 22), ("FR", 27)])
    if country == "NL":
        bban = rnd.choice(["ABNA", "RABO", "INGB"]) + "".join(str(rnd.randrange(10)) for _ in range(10))
    elif country == "GB":
        bban = "WEST" + "".join(str(rnd.randrange(10)) for _ in range(14))
    else:
        bban = "".join(str(rnd.randrange(10)) for _ in range(length - 4))
    rearranged = bban + country + "00"
    num = int("".join(str(int(c, 36)) for c in rearranged))
    check = 98 - num % 97
    s = f"{country}{check:02d}{bban}"
    if rnd.random() < 0.5:
        s = " ".join(s[i:i + 4] for i in range(0, len(s), 4))
    return s


def ssn(rnd):
    area = rnd.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rnd.randrange(1, 100):02d}-{rnd.randrange(1, 10000):04d}"


def nanp(rnd, lo, hi):
    """A NANP area code or exchange: never an N11 service code (211, 311, ... 911)."""
    while True:
        code = rnd.randrange(lo, hi)
        if code % 100 != 11:
            return code


def phone(rnd):
    k = rnd.randrange(5)
    if k == 0:
        return f"({nanp(rnd, 201, 990)}) {nanp(rnd, 200, 999)}-{rnd.randrange(10000):04d}"
    if k == 1:
        return f"{nanp(rnd, 201, 990)}-{nanp(rnd, 200, 999)}-{rnd.randrange(10000):04d}"
    if k == 2:
        return f"+44 20 {rnd.randrange(7000, 8999)} {rnd.randrange(10000):04d}"
    if k == 3:
        return f"+31 6 {rnd.randrange(10000000, 99999999)}"
    return f"+49 30 {rnd.randrange(1000000, 99999999)}"


def ip(rnd):
    if rnd.random() < 0.8:
        return ".".join(str(rnd.randrange(1, 255)) for _ in range(4))
    return "2001:db8:%x::%x" % (rnd.randrange(1, 0xFFFF), rnd.randrange(1, 0xFFFF))


def email(rnd):
    return f"{rnd.choice(FIRST).lower()}.{rnd.choice(LAST).replace(' ', '').lower()}@{rnd.choice(DOMAINS)}"


def url(rnd):
    return f"https://www.{rnd.choice(DOMAINS)}/case/{rnd.randrange(1000, 9999)}"


def person(rnd):
    return f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"


# (type, generator, template): the template's {} is replaced by the value.
KINDS = [
    ("EMAIL", email, "Please write to {} for the documents."),
    ("PHONE", phone, "He can be reached by phone at {} during office hours."),
    ("US_SSN", ssn, "Her SSN {} was on the application form."),
    ("CREDIT_CARD", card, "The deposit was paid with card {} last week."),
    ("IBAN", iban, "Transfer the amount to IBAN {} before Friday."),
    ("IP_ADDRESS", ip, "The login came from {} according to the logs."),
    ("URL", url, "The judgment is published at {} for reference."),
    ("CRYPTO", lambda r: r.choice(BTC), "The ransom was sent to wallet {} that night."),
    ("PERSON", person, "The claim was filed by Mr. {} in person."),
]


def main():
    out = sys.argv[1]
    megabytes = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    target = int(megabytes * 1_000_000)
    rnd = random.Random(20261124)
    os.makedirs(out, exist_ok=True)
    parts, labels, pos, pii_bytes = [], [], 0, 0
    while pos < target:
        if pii_bytes < 0.01 * pos:
            kind, gen, template = rnd.choice(KINDS)
            value = gen(rnd)
            before, after = template.split("{}")
            start = pos + len(before)
            labels.append({"start": start, "end": start + len(value), "type": kind})
            sentence = before + value + after + " "
            pii_bytes += len(value)
        else:
            sentence = rnd.choice(PROSE) + (" " if rnd.random() < 0.9 else "\n\n")
        parts.append(sentence)
        pos += len(sentence)
    text = "".join(parts)
    assert text.isascii()
    with open(os.path.join(out, "corpus.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "labels.jsonl"), "w") as f:
        for label in labels:
            f.write(json.dumps(label) + "\n")
    message = ("Hi, this is Jane Miller from the Amsterdam office. Please call me on "
               "+31 6 12345678 or mail jane.miller@lawfirm.nl about the lease; my card "
               "4111 1111 1111 1111 was charged twice last month. Thanks!")
    assert 190 <= len(message) <= 210, len(message)
    with open(os.path.join(out, "message.txt"), "w") as f:
        f.write(message)
    print(json.dumps({"bytes": len(text), "labels": len(labels), "pii_bytes": pii_bytes}))


if __name__ == "__main__":
    main()
