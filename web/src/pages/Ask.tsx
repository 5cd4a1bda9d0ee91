// Ask (the home page): a question to a matter, the answer streaming in with numbered
// citations, each checked against its source (strict mode keeps only verified statements),
// and each source opened beside it.
import { useRef, useState } from "preact/hooks";
import { describe } from "../api";
import { streamPost } from "../sse";
import type { AskResponse, Citation, Source } from "../types";
import { AlsoAsk, MatterPicker } from "../components/Matters";
import { Answer } from "../components/Answer";
import { SourcePanel } from "../components/SourcePanel";
import { History, type Entry } from "../components/History";
import { ErrorBox, Busy } from "../components/ui";

export function Ask() {
  const [collection, setCollection] = useState(localStorage.getItem("bear.matter") ?? "");
  const [question, setQuestion] = useState("");
  const [streamed, setStreamed] = useState("");
  const [answer, setAnswer] = useState<AskResponse | null>(null);
  const [open, setOpen] = useState<Source | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [running, setRunning] = useState(false);
  const [asked, setAsked] = useState(0);
  const [also, setAlso] = useState<string[]>([]);
  const [strict, setStrict] = useState(localStorage.getItem("bear.loose") !== "1");
  const stop = useRef<AbortController | null>(null);

  const pick = (name: string) => {
    localStorage.setItem("bear.matter", name);
    setCollection(name);
    setAlso((a) => a.filter((n) => n !== name));
  };
  const ask = async (e: Event) => {
    e.preventDefault();
    const ctl = new AbortController();
    stop.current = ctl;
    setRunning(true);
    setError(null);
    setAnswer(null);
    setOpen(null);
    setStreamed("");
    let text = "";
    try {
      const scope = also.length ? { collections: [collection, ...also] } : { collection };
      await streamPost("/api/v1/ask", { question, strict, ...scope }, (ev) => {
        if (ev.event === "token") {
          text += (ev.data as { text: string }).text;
          setStreamed(text);
        } else if (ev.event === "done") setAnswer(ev.data as AskResponse);
        else if (ev.event === "error") setError((ev.data as { error: { message: string } }).error.message);
      }, ctl.signal);
    } catch (err) {
      setError(describe(err));
    } finally {
      setRunning(false);
      setAsked((n) => n + 1);
    }
  };
  const reopen = (e: Entry) => {
    setQuestion(e.question);
    setStreamed("");
    setError(null);
    setOpen(null);
    setAnswer(e.answer);
  };
  const cite = (n: number) => setOpen(answer?.sources.find((s) => s.marker === n) ?? null);
  return (
    <div class={open ? "split" : ""}>
      <section aria-labelledby="ask-title">
        <h1 id="ask-title">Ask your documents</h1>
        <form onSubmit={ask} class="stack">
          <MatterPicker value={collection} onChange={pick} />
          <AlsoAsk primary={collection} value={also} onChange={setAlso} />
          <label for="question">Question</label>
          <textarea id="question" rows={3} required value={question} onInput={(e) => setQuestion(e.currentTarget.value)} />
          <label class="check">
            <input
              type="checkbox"
              checked={strict}
              onChange={(e) => {
                const on = e.currentTarget.checked;
                localStorage.setItem("bear.loose", on ? "0" : "1");
                setStrict(on);
              }}
            />
            Only verified statements
          </label>
          <div class="row">
            <button type="submit" disabled={running || !question.trim() || !collection}>
              Ask
            </button>
            {running && (
              <button type="button" onClick={() => stop.current?.abort()}>
                Stop
              </button>
            )}
          </div>
        </form>
        <ErrorBox message={error} />
        {running && !streamed && <Busy label="Finding sources and starting the answer…" />}
        {answer && (answer.refusal || !answer.relevant) && (
          <p class="notfound" role="status">
            {refusalText(answer)}
          </p>
        )}
        {(answer || streamed) && !answer?.refusal && (
          <Answer
            text={answer?.answer ?? streamed}
            markers={answer?.sources.map((s) => s.marker) ?? []}
            unverified={answer?.sources.filter((s) => s.cited && !s.verified).map((s) => s.marker) ?? []}
            onCite={cite}
          />
        )}
        {answer && <Checks answer={answer} onCite={cite} />}
        {answer && answer.sources.length > 0 && (
          <>
            <h2>Sources</h2>
            <ol class="sources">
              {answer.sources.map((s) => (
                <li value={s.marker} class={s.cited ? "cited" : ""}>
                  <button class="link" onClick={() => setOpen(s)}>
                    {s.citation}
                  </button>
                  {s.verified ? " — cited, verified" : s.cited ? " — cited, NOT verified" : ""}
                </li>
              ))}
            </ol>
            <button onClick={() => navigator.clipboard?.writeText(withCitations(answer))}>Copy with citations</button>
          </>
        )}
        {collection && <History collection={collection} version={asked} onOpen={reopen} />}
      </section>
      {open && <SourcePanel collection={open.collection ?? collection} source={open} onClose={() => setOpen(null)} />}
    </div>
  );
}

function refusalText(a: AskResponse): string {
  switch (a.refusal) {
    case "nothing_verified":
      return "Not found in the documents: no statement of the answer could be verified against its sources, so none is shown. The closest sources are listed below.";
    case "key_terms_missing":
      return "Not found in the documents: the closest passages do not mention what the question asks about. They are listed below.";
    default:
      return "Not found in the documents: none of this matter's sources answers the question.";
  }
}

/** Each citation's check against its source, what strict mode removed, and (without strict
 *  mode) the statements no source supports. */
function Checks(props: { answer: AskResponse; onCite: (n: number) => void }) {
  const a = props.answer;
  const sentence = (r: [number, number]) => a.answer.slice(r[0], r[1]).trim();
  const unsupported = a.unsupported_sentences ?? [];
  if (!a.citations?.length && !a.removed_sentences && !unsupported.length) return null;
  return (
    <section aria-labelledby="checks-title" class="checks">
      <h2 id="checks-title">Citations checked</h2>
      <ul>
        {(a.citations ?? []).map((c: Citation) => (
          <li class={c.verified ? "verified" : "unverified"}>
            <span class="mark">{c.verified ? "✓ verified" : "✗ not verified"}</span>{" "}
            <button class="link" onClick={() => props.onCite(c.marker)}>
              [{c.marker}]
            </button>{" "}
            {sentence(c.sentence)}
            {c.added && <em> (citation added by BEAR)</em>}
            {c.span ? (
              <blockquote>
                {c.span.page ? `p. ${c.span.page}: ` : ""}“{c.span.text}”
              </blockquote>
            ) : (
              <p class="reason">{c.reason}</p>
            )}
          </li>
        ))}
        {unsupported.map((r) => (
          <li class="unverified">
            <span class="mark">✗ not verified</span> {sentence(r)}
            <p class="reason">no source supports it</p>
          </li>
        ))}
      </ul>
      {a.removed_sentences > 0 && (
        <p role="note">
          {a.removed_sentences} statement(s) without a verified citation were removed. Untick “Only verified statements”
          and ask again to see them, marked.
        </p>
      )}
    </section>
  );
}

function withCitations(a: AskResponse): string {
  return `${a.answer}\n\n${a.sources.map((s) => `[${s.marker}] ${s.citation}`).join("\n")}\n`;
}
