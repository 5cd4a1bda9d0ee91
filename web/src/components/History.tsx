// A matter's questions and answers, kept on the server: reopen one, or delete it.
import { useEffect, useState } from "preact/hooks";
import { api, describe, get, seg } from "../api";
import type { AskResponse } from "../types";
import { Confirm, ErrorBox } from "./ui";

interface Item {
  id: string;
  asked_at: string;
  question: string;
  relevant: boolean;
}

export interface Entry {
  id: string;
  question: string;
  answer: AskResponse;
}

export function History(props: { collection: string; version: number; onOpen: (e: Entry) => void }) {
  const [items, setItems] = useState<Item[] | null>(null);
  const [doomed, setDoomed] = useState<Item | null>(null);
  const [error, setError] = useState<string | null>(null);
  const base = `/api/v1/collections/${seg(props.collection)}/history`;
  const load = () => get<Item[]>(base).then(setItems, (e) => setError(describe(e)));
  useEffect(() => {
    if (props.collection) load();
  }, [props.collection, props.version]);
  const open = (i: Item) => get<Entry>(`${base}/${seg(i.id)}`).then(props.onOpen, (e) => setError(describe(e)));
  const remove = async (i: Item) => {
    setDoomed(null);
    try {
      await api("DELETE", `${base}/${seg(i.id)}`);
      load();
    } catch (e) {
      setError(describe(e));
    }
  };
  if (!items) return <ErrorBox message={error} />;
  return (
    <section aria-labelledby="history-title" class="history">
      <h2 id="history-title">Asked before in {props.collection}</h2>
      <ErrorBox message={error} />
      {items.length === 0 && <p class="muted">No question yet.</p>}
      <ul>
        {items.map((i) => (
          <li>
            <button class="link" onClick={() => open(i)}>
              {i.question}
            </button>{" "}
            <span class="muted">
              {new Date(i.asked_at).toLocaleString()}
              {!i.relevant && " · not found"}
            </span>{" "}
            <button class="danger small" aria-label={`Delete the question: ${i.question}`} onClick={() => setDoomed(i)}>
              Delete
            </button>
          </li>
        ))}
      </ul>
      {doomed && (
        <Confirm title="Delete this question?" confirm="Delete" onConfirm={() => remove(doomed)} onCancel={() => setDoomed(null)}>
          <p>The question and its answer are deleted from this matter's history. The documents are not touched.</p>
        </Confirm>
      )}
    </section>
  );
}
