// Free chat with a loaded model (OpenAI-style messages, so the system prompt and the history
// go through the model's chat template); Stop closes the stream, which stops the model.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { describe, get } from "../api";
import { streamPost } from "../sse";
import type { ModelRow } from "../types";
import { renderMarkdown } from "../markdown";
import { ErrorBox } from "../components/ui";

interface Message {
  role: "user" | "assistant";
  content: string;
}

function Rendered({ text }: { text: string }) {
  const ref = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    ref.current!.innerHTML = renderMarkdown(text);
  }, [text]);
  return <div class="prose" ref={ref} />;
}

export function Chat() {
  const [models, setModels] = useState<ModelRow[]>([]);
  const [model, setModel] = useState("");
  const [system, setSystem] = useState("You are a careful assistant to a lawyer. Answer briefly.");
  const [temperature, setTemperature] = useState(0.7);
  const [maxTokens, setMaxTokens] = useState(256);
  const [history, setHistory] = useState<Message[]>([]);
  const [draft, setDraft] = useState("");
  const [reply, setReply] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const stop = useRef<AbortController | null>(null);
  useEffect(() => {
    get<ModelRow[]>("/api/v1/models").then((all) => {
      const chat = all.filter((m) => m.meta.has_chat_template);
      setModels(chat);
      setModel((m) => m || chat[0]?.id || "");
    }, (e) => setError(describe(e)));
  }, []);
  const send = async (e: Event) => {
    e.preventDefault();
    const asked: Message[] = [...history, { role: "user", content: draft }];
    setHistory(asked);
    setDraft("");
    setError(null);
    const ctl = new AbortController();
    stop.current = ctl;
    let text = "";
    setReply("");
    try {
      const messages = [{ role: "system", content: system }, ...asked];
      await streamPost("/v1/chat/completions", { model, messages, temperature, max_tokens: maxTokens }, (ev) => {
        const d = ev.data as { choices?: { delta?: { content?: string } }[]; error?: { message: string } };
        if (d?.error) setError(d.error.message);
        const piece = d?.choices?.[0]?.delta?.content;
        if (piece) {
          text += piece;
          setReply(text);
        }
      }, ctl.signal);
    } catch (err) {
      setError(describe(err));
    } finally {
      setHistory([...asked, { role: "assistant", content: text }]);
      setReply(null);
      stop.current = null;
    }
  };
  return (
    <section aria-labelledby="chat-title">
      <h1 id="chat-title">Chat</h1>
      <details>
        <summary>Model and settings</summary>
        <div class="grid">
          <label>
            Model
            <select value={model} onChange={(e) => setModel(e.currentTarget.value)}>
              {models.map((m) => (
                <option value={m.id}>{m.name}</option>
              ))}
            </select>
          </label>
          <label>
            Temperature
            <input type="number" min={0} max={2} step={0.1} value={temperature} onInput={(e) => setTemperature(Number(e.currentTarget.value))} />
          </label>
          <label>
            Max tokens
            <input type="number" min={1} max={4096} value={maxTokens} onInput={(e) => setMaxTokens(Number(e.currentTarget.value))} />
          </label>
          <label class="wide">
            System prompt
            <textarea rows={2} value={system} onInput={(e) => setSystem(e.currentTarget.value)} />
          </label>
        </div>
      </details>
      <ol class="chat" aria-live="polite">
        {history.map((m) => (
          <li class={m.role}>
            <span class="sr-only">{m.role === "user" ? "You" : "Model"}:</span>
            {m.role === "user" ? <p>{m.content}</p> : <Rendered text={m.content} />}
          </li>
        ))}
        {reply !== null && (
          <li class="assistant" aria-busy="true">
            <Rendered text={reply || "…"} />
          </li>
        )}
      </ol>
      <ErrorBox message={error} />
      <form onSubmit={send} class="stack">
        <label for="message">Message</label>
        <textarea id="message" rows={3} required value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
        <div class="row">
          <button type="submit" disabled={reply !== null || !draft.trim() || !model}>
            Send
          </button>
          {reply !== null && (
            <button type="button" onClick={() => stop.current?.abort()}>
              Stop
            </button>
          )}
          <button type="button" onClick={() => setHistory([])} disabled={reply !== null || !history.length}>
            Clear
          </button>
        </div>
      </form>
    </section>
  );
}
