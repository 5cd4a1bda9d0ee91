// The user's saved chats, kept on the server: reopen one, or delete it.
import { useEffect, useState } from "preact/hooks";
import { api, describe, get, seg } from "../api";
import { Confirm, ErrorBox } from "./ui";

export interface Message {
  role: "user" | "assistant";
  content: string;
}

export interface SavedChat {
  id: string;
  title: string;
  model: string;
  system: string;
  temperature?: number;
  max_tokens?: number;
  messages: Message[];
}

interface Item {
  id: string;
  title: string;
  model: string;
  updated_at: string;
  messages: number;
}

export function SavedChats(props: {
  current: string | null;
  version: number;
  busy: boolean;
  onOpen: (c: SavedChat) => void;
  onDeleted: (id: string) => void;
}) {
  const [items, setItems] = useState<Item[] | null>(null);
  const [doomed, setDoomed] = useState<Item | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () => get<Item[]>("/api/v1/chats").then(setItems, (e) => setError(describe(e)));
  useEffect(() => {
    load();
  }, [props.version]);
  const open = (i: Item) => {
    setError(null);
    get<SavedChat>(`/api/v1/chats/${seg(i.id)}`).then(props.onOpen, (e) => setError(describe(e)));
  };
  const remove = async (i: Item) => {
    setDoomed(null);
    try {
      await api("DELETE", `/api/v1/chats/${seg(i.id)}`);
      props.onDeleted(i.id);
      load();
    } catch (e) {
      setError(describe(e));
    }
  };
  return (
    <section aria-labelledby="saved-chats-title" class="history">
      <h2 id="saved-chats-title">Saved chats</h2>
      <ErrorBox message={error} />
      {items && items.length === 0 && <p class="muted">No saved chat yet: each exchange is saved here.</p>}
      <ul>
        {(items ?? []).map((i) => (
          <li>
            <button class="link" disabled={props.busy} aria-current={i.id === props.current ? "true" : undefined} onClick={() => open(i)}>
              {i.title}
            </button>{" "}
            <span class="muted">
              {new Date(i.updated_at).toLocaleString()} · {i.messages} messages · {i.model}
            </span>{" "}
            <button class="danger small" disabled={props.busy} aria-label={`Delete the chat: ${i.title}`} onClick={() => setDoomed(i)}>
              Delete
            </button>
          </li>
        ))}
      </ul>
      {doomed && (
        <Confirm title="Delete this chat?" confirm="Delete" onConfirm={() => remove(doomed)} onCancel={() => setDoomed(null)}>
          <p>The chat and all its messages are deleted from the server. This cannot be undone.</p>
        </Confirm>
      )}
    </section>
  );
}
