// Free chat with a loaded model (OpenAI-style messages, so the system prompt and the history
// go through the model's chat template); Stop closes the stream, which stops the model. Each
// exchange is saved on the server (sealed under the user's own key) and listed under "Saved
// chats", to reopen or delete.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { api, describe, get } from "../api";
import { streamPost } from "../sse";
import type { ModelRow } from "../types";
import { renderMarkdown } from "../markdown";
import { ErrorBox } from "../components/ui";
import { SavedChats, type Message, type SavedChat } from "../components/SavedChats";

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
  const [chatId, setChatId] = useState<string | null>(null);
  // The id as the saves see it: a save waits for the one before (a second exchange sent while
  // the first was still being saved must update that chat, not create another).
  const chatRef = useRef<string | null>(null);
  const saving = useRef<Promise<void>>(Promise.resolve());
  const pickChat = (id: string | null) => {
    chatRef.current = id;
    setChatId(id);
  };
  const [version, setVersion] = useState(0);
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
      const done: Message[] = [...asked, { role: "assistant", content: text }];
      setHistory(done);
      setReply(null);
      stop.current = null;
      await save(done);
    }
  };
  // Keeps the conversation: a new chat the first time, the same one after.
  const save = (messages: Message[]) => {
    const body = { model, system, temperature, max_tokens: maxTokens, messages };
    const one = async () => {
      const id = chatRef.current;
      try {
        const saved = await api<SavedChat>(id ? "PUT" : "POST", id ? `/api/v1/chats/${encodeURIComponent(id)}` : "/api/v1/chats", body);
        pickChat(saved.id);
        setVersion((v) => v + 1);
      } catch (err) {
        // A failure of the exchange itself (the server went away) says more: it stays shown.
        setError((shown) => shown ?? `The chat was not saved: ${describe(err)}`);
      }
    };
    saving.current = saving.current.then(one);
    return saving.current;
  };
  const reopen = (c: SavedChat) => {
    pickChat(c.id);
    setHistory(c.messages);
    setSystem(c.system);
    if (c.temperature != null) setTemperature(c.temperature);
    if (c.max_tokens != null) setMaxTokens(c.max_tokens);
    if (models.some((m) => m.id === c.model)) setModel(c.model);
    else setError(`This chat was held with ${c.model}, which is not loaded: it goes on with ${model || "no model"}.`);
  };
  const fresh = () => {
    pickChat(null);
    setHistory([]);
    setError(null);
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
          <button type="button" onClick={fresh} disabled={reply !== null || !history.length}>
            New chat
          </button>
        </div>
      </form>
      <SavedChats current={chatId} version={version} busy={reply !== null} onOpen={reopen} onDeleted={(id) => id === chatId && fresh()} />
    </section>
  );
}
