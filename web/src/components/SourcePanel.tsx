// One source beside the answer: its document and page, and the cited passage highlighted in
// the document's text (for a PDF, its page rendered by pdf.js, loaded only now).
import { useEffect, useRef, useState } from "preact/hooks";
import { describe, get, seg } from "../api";
import type { Source } from "../types";
import { ErrorBox } from "./ui";

interface Passage {
  ordinal: number;
  page: number | null;
  text: string;
}

interface DocText {
  title: string;
  mime: string;
  chunks: Passage[];
}

export function SourcePanel(props: { collection: string; source: Source; onClose: () => void }) {
  const { source } = props;
  const [doc, setDoc] = useState<DocText | null>(null);
  const [error, setError] = useState<string | null>(null);
  const mark = useRef<HTMLElement>(null);
  useEffect(() => {
    setDoc(null);
    setError(null);
    get<DocText>(`/api/v1/collections/${seg(props.collection)}/documents/${seg(source.document_id)}/text`).then(
      setDoc,
      (e) => setError(describe(e)),
    );
  }, [props.collection, source.chunk_id]);
  useEffect(() => {
    mark.current?.scrollIntoView({ block: "center" });
  }, [doc]);
  const ordinal = Number(source.chunk_id.split("-").pop());
  return (
    <aside class="source" aria-label={`Source ${source.marker}`}>
      <div class="row spread">
        <h2>
          [{source.marker}] {source.title}
        </h2>
        <button onClick={props.onClose}>Close</button>
      </div>
      <p class="muted">
        {source.path.split("/").pop()}
        {source.page != null && <>, page {source.page}</>}
      </p>
      <ErrorBox message={error} />
      {source.page != null && doc?.mime === "application/pdf" && (
        <PdfPage collection={props.collection} source={source} />
      )}
      <div class="context" tabIndex={0} role="region" aria-label="The document's text, the cited passage highlighted">
        {(doc?.chunks ?? [{ ordinal, page: source.page, text: source.text }]).map((c) =>
          c.ordinal === ordinal ? (
            <mark ref={mark} class="passage">
              {c.text}
            </mark>
          ) : (
            <p>{c.text}</p>
          ),
        )}
      </div>
    </aside>
  );
}

function PdfPage(props: { collection: string; source: Source }) {
  const canvas = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const url = `/api/v1/collections/${seg(props.collection)}/documents/${seg(props.source.document_id)}/file`;
    import("../pdf")
      .then((pdf) => pdf.renderPage(canvas.current!, url, props.source.page!, props.source.text))
      .catch((e) => setError(`The PDF page cannot be shown (${describe(e)}); its text is below.`));
  }, [props.source.chunk_id]);
  return (
    <>
      <ErrorBox message={error} />
      <div class="pdf" ref={canvas} tabIndex={0} role="region" aria-label={`Page ${props.source.page} of the PDF`} />
    </>
  );
}
