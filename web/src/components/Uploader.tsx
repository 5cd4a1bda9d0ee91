// Drop files or a folder (or pick them): each file's progress, then its ingest, and the
// reason for each refused file.
import { useState } from "preact/hooks";
import { describe } from "../api";
import { type Upload, awaitJob, droppedFiles, sendFile } from "../upload";
import { bytes } from "./ui";

export function Uploader(props: { collection: string; onIngested: () => void }) {
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [over, setOver] = useState(false);
  const update = (i: number, u: Partial<Upload>) =>
    setUploads((all) => all.map((x, j) => (j === i ? { ...x, ...u } : x)));
  const start = async (files: File[]) => {
    const base = uploads.length;
    setUploads((all) => [...all, ...files.map((f) => ({ name: f.name, size: f.size, sent: 0, state: "sending" as const }))]);
    for (const [n, file] of files.entries()) {
      const i = base + n;
      try {
        const job = await sendFile(props.collection, file, (sent) => update(i, { sent }));
        update(i, { state: "ingesting", sent: file.size });
        const reason = await awaitJob(job);
        update(i, reason ? { state: "refused", reason } : { state: "done" });
      } catch (e) {
        update(i, { state: "refused", reason: describe(e) });
      }
    }
    props.onIngested();
  };
  const drop = async (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    if (e.dataTransfer) start(await droppedFiles(e.dataTransfer));
  };
  return (
    <div
      class={over ? "drop over" : "drop"}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={drop}
    >
      <p>Drop files or a folder here, or</p>
      <label class="button">
        Choose files
        <input class="sr-only" type="file" multiple onChange={(e) => start([...(e.currentTarget.files ?? [])])} />
      </label>
      {uploads.length > 0 && (
        <ul class="uploads" aria-label="Uploads">
          {uploads.map((u) => (
            <li class={u.state}>
              <span>{u.name}</span> <span class="muted">{bytes(u.size)}</span>{" "}
              {u.state === "sending" && <progress max={u.size || 1} value={u.sent} aria-label={`Sending ${u.name}`} />}
              {u.state === "ingesting" && <progress aria-label={`Ingesting ${u.name}`} />}
              {u.state === "done" && <span>ingested</span>}
              {u.state === "refused" && <span class="error">refused: {u.reason}</span>}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
