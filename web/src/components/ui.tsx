// Small pieces every page uses: errors in words, progress, confirmation, sizes and dates.
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

export function ErrorBox({ message }: { message: string | null }) {
  if (!message) return null;
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

export function Busy({ label }: { label: string }) {
  return (
    <p class="busy" role="status" aria-live="polite">
      <progress aria-label={label} /> {label}
    </p>
  );
}

/** A modal question with a clear statement of what confirming does. */
export function Confirm(props: {
  title: string;
  children: ComponentChildren;
  confirm: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return (
    <dialog ref={ref} aria-labelledby="confirm-title" onClose={props.onCancel}>
      <h2 id="confirm-title">{props.title}</h2>
      {props.children}
      <div class="row">
        <button class="danger" onClick={props.onConfirm}>
          {props.confirm}
        </button>
        <button onClick={() => ref.current?.close()}>Cancel</button>
      </div>
    </dialog>
  );
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function when(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toLocaleString();
}

/** Writes `text` to a file the browser downloads. */
export function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  URL.revokeObjectURL(url);
}
