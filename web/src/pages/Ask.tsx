// Ask (the home page): a question to a matter, the answer streaming in with numbered
// citations, and each source opened beside it.
import { useRef, useState } from "preact/hooks";
import { describe } from "../api";
import { streamPost } from "../sse";
import type { AskResponse, Source } from "../types";
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
      await streamPost("/api/v1/ask", { question, ...scope }, (ev) => {
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
        {answer && !answer.relevant && (
          <p class="notfound" role="status">
            Not found in the documents: none of this matter's sources answers the question.
          </p>
        )}
        {(answer || streamed) && (
          <Answer text={answer?.answer ?? streamed} markers={answer?.sources.map((s) => s.marker) ?? []} onCite={cite} />
        )}
        {answer && answer.sources.length > 0 && (
          <>
            <h2>Sources</h2>
            <ol class="sources">
              {answer.sources.map((s) => (
                <li value={s.marker} class={s.cited ? "cited" : ""}>
                  <button class="link" onClick={() => setOpen(s)}>
                    {s.citation}
                  </button>
                  {s.cited ? " — cited" : ""}
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

function withCitations(a: AskResponse): string {
  return `${a.answer}\n\n${a.sources.map((s) => `[${s.marker}] ${s.citation}`).join("\n")}\n`;
}
