"""Writes BEAR's demo corpus: a dozen short, self-written, fictitious legal documents in txt,
md, html, pdf and docx. Every name, number and address in them is invented.

Run from the repository root with a Python that has fpdf2 and python-docx:

    python examples/corpus/make_corpus.py

The PDF and DOCX files are committed, so nobody needs to run this to use the corpus; it is here
so the binary files can be checked and regenerated. Page layout is explicit (one section per
page) so tests can assert page numbers.
"""

import os
from fpdf import FPDF
import docx
from docx.enum.text import WD_BREAK

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def write_pdf(name, title, author, pages):
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_creation_date(__import__("datetime").datetime(2024, 3, 15, 9, 30, 0))
    pdf.set_auto_page_break(False)
    for heading, paragraphs in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font("Helvetica", "", 11)
        for p in paragraphs:
            pdf.multi_cell(0, 6, p, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    pdf.output(path(name))


def write_docx(name, title, author, pages):
    d = docx.Document()
    d.core_properties.title = title
    d.core_properties.author = author
    d.core_properties.created = __import__("datetime").datetime(2024, 2, 1, 10, 0, 0)
    for i, (heading, paragraphs) in enumerate(pages):
        if i > 0:
            d.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        d.add_heading(heading, level=1)
        for p in paragraphs:
            d.add_paragraph(p)
    d.save(path(name))


LEASE = [
    ("Commercial Lease Agreement - Keizersgracht 221, Amsterdam", [
        "This Commercial Lease Agreement is made on 1 March 2024 between Canal Estates B.V., "
        "the Landlord, and Brightwater Legal LLP, the Tenant.",
        "The Landlord lets to the Tenant the office premises at Keizersgracht 221, Amsterdam, "
        "comprising 340 square metres on the second and third floors.",
        "The Tenant shall use the premises only as a law office and for no other purpose.",
    ]),
    ("Article 2 - Rent and Deposit", [
        "The rent is EUR 4,250 per month, excluding VAT and service charges.",
        "Rent is payable in advance on the first business day of each month to the Landlord's "
        "account IBAN NL91ABNA0417164300.",
        "The rent is indexed each year on 1 March according to the consumer price index.",
        "The Tenant shall pay a security deposit equal to three months' rent before the keys "
        "are handed over.",
    ]),
    ("Article 3 - Term and Termination", [
        "The lease is entered into for a fixed term of five years, starting on 1 April 2024.",
        "Either party may terminate the lease at the end of the term by giving at least six "
        "months' written notice by registered letter.",
        "The Landlord may terminate the lease early if the Tenant is more than two months in "
        "arrears with the rent.",
    ]),
    ("Article 4 - Maintenance and Signatures", [
        "Minor repairs are for the Tenant; structural maintenance of the roof, walls and "
        "installations is for the Landlord.",
        "Signed for the Landlord by Pieter van Dam, director, and for the Tenant by Sarah "
        "Whitfield, managing partner.",
    ]),
]

SETTLEMENT = [
    ("Settlement Agreement", [
        "This Settlement Agreement is made between Orion Freight Ltd and Meridian Components "
        "GmbH to settle the dispute about the late delivery of gearbox housings in 2023.",
        "The parties wish to avoid the cost and uncertainty of litigation.",
    ]),
    ("Payment and Release", [
        "Meridian Components GmbH shall pay Orion Freight Ltd a settlement sum of EUR 25,000 "
        "within thirty days of signature.",
        "On receipt of the payment, each party releases the other from all claims arising from "
        "the 2023 deliveries.",
        "The terms of this settlement are confidential and may be disclosed only to advisers "
        "and auditors.",
    ]),
]

EMPLOYMENT = [
    ("Employment Agreement", [
        "Employer: Northgate Advisory B.V., Herengracht 12, Utrecht.",
        "Employee: Thomas de Vries, born 14 May 1988, e-mail t.devries@example.com, "
        "telephone +31 6 12345678.",
        "The employee is employed as Senior Paralegal from 1 September 2024 for an indefinite "
        "period, with a gross monthly salary of EUR 4,100.",
    ]),
    ("Notice and Non-Competition", [
        "The notice period for the employee is two months; for the employer it is the "
        "statutory notice period.",
        "For twelve months after the employment ends, the employee shall not work for a "
        "competing legal services provider within 50 kilometres of Utrecht.",
        "A breach of the non-compete clause costs a penalty of EUR 5,000 per breach.",
    ]),
    ("Confidentiality", [
        "The employee shall keep all client information confidential, during and after the "
        "employment.",
    ]),
]

MINUTES = [
    ("Minutes of the Board Meeting of Vantage Holdings N.V.", [
        "Held on 12 January 2024 at the registered office in Rotterdam. Present: the full "
        "board; chair: Margaret Okafor.",
        "The board discussed the proposed acquisition of Delta Archive Services B.V.",
    ]),
    ("Resolutions", [
        "The board resolved to approve the acquisition of all shares in Delta Archive Services "
        "B.V. for a purchase price of EUR 3.2 million.",
        "The board authorised the chief financial officer to sign the share purchase agreement.",
    ]),
]


def main():
    write_pdf("commercial-lease.pdf", "Commercial Lease Agreement", "Canal Estates B.V.", LEASE)
    write_pdf("settlement-agreement.pdf", "Settlement Agreement", "Orion Freight Ltd", SETTLEMENT)
    write_docx("employment-agreement.docx", "Employment Agreement", "Northgate Advisory B.V.",
               EMPLOYMENT)
    write_docx("board-minutes.docx", "Board Minutes", "Vantage Holdings N.V.", MINUTES)
    # A German letter in windows-1252, to show that legacy encodings are decoded.
    letter = ("Mandantenbrief\n\nSehr geehrte Frau Müller,\n\nwir bestätigen den Eingang Ihrer "
              "Unterlagen zur Kündigung des Mietvertrags. Die Kündigungsfrist beträgt drei "
              "Monate zum Monatsende.\n\nMit freundlichen Grüßen\nKanzlei Bäcker & Söhne\n")
    with open(path("mandantenbrief-latin1.txt"), "wb") as f:
        f.write(letter.encode("cp1252"))


if __name__ == "__main__":
    main()
