// The matter (collection) picker shared by Ask and Chat-free pages.
import { useEffect, useState } from "preact/hooks";
import { describe, get } from "../api";
import type { Collection } from "../types";
import { ErrorBox } from "./ui";

export function useCollections(): [Collection[] | null, string | null, () => void] {
  const [list, setList] = useState<Collection[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () => {
    get<Collection[]>("/api/v1/collections").then(
      (l) => {
        setList(l);
        setError(null);
      },
      (e) => setError(describe(e)),
    );
  };
  useEffect(load, []);
  return [list, error, load];
}

export function MatterPicker(props: { value: string; onChange: (name: string) => void }) {
  const [list, error] = useCollections();
  useEffect(() => {
    if (list?.length && !list.some((c) => c.name === props.value)) props.onChange(list[0].name);
  }, [list]);
  if (error) return <ErrorBox message={error} />;
  if (list && list.length === 0)
    return (
      <p>
        No matter yet: <a href="#/matters">create one and add its documents</a>.
      </p>
    );
  return (
    <div class="row">
      <label for="matter">Matter</label>
      <select id="matter" value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
        {(list ?? []).map((c) => (
          <option value={c.name}>
            {c.name} ({c.documents} documents)
          </option>
        ))}
      </select>
    </div>
  );
}

/** The other matters a question may also be asked of. */
export function AlsoAsk(props: { primary: string; value: string[]; onChange: (names: string[]) => void }) {
  const [list] = useCollections();
  const others = (list ?? []).filter((c) => c.name !== props.primary);
  if (others.length === 0) return null;
  const toggle = (name: string, on: boolean) =>
    props.onChange(on ? [...props.value, name] : props.value.filter((n) => n !== name));
  return (
    <details class="also">
      <summary>Ask other matters too{props.value.length ? ` (${props.value.length})` : ""}</summary>
      <fieldset>
        <legend class="sr-only">Other matters to ask</legend>
        {others.map((c) => (
          <label class="inline check">
            <input
              type="checkbox"
              checked={props.value.includes(c.name)}
              onChange={(e) => toggle(c.name, e.currentTarget.checked)}
            />
            {c.name}
          </label>
        ))}
      </fieldset>
    </details>
  );
}
