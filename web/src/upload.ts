// Uploads with per-file progress (XMLHttpRequest reports upload progress; fetch does not), then
// the ingest job polled to its end. Dropped folders are walked for their files.
import { ApiError, failure, get, headers, seg, session } from "./api";
import type { Job } from "./types";

export interface Upload {
  name: string;
  size: number;
  sent: number;
  state: "sending" | "ingesting" | "done" | "refused";
  reason?: string;
}

/** Sends one file; `onSent` gets the bytes sent so far. Resolves to the ingest job's id. */
export function sendFile(collection: string, file: File, onSent: (n: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const sentIn = session();
    xhr.open("POST", `/api/v1/collections/${seg(collection)}/documents?filename=${seg(file.name)}`);
    for (const [k, v] of Object.entries(headers("POST", { "content-type": "application/octet-stream" })))
      xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onSent(e.loaded);
    xhr.onerror = () => reject(new ApiError("The upload was cut off: the server may have stopped. Retry once it is back.", 0, "unreachable"));
    xhr.onload = async () => {
      if (xhr.status === 202) return resolve(JSON.parse(xhr.responseText).job_id);
      const r = new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText });
      reject(await failure(r, sentIn));
    };
    xhr.send(file);
  });
}

/** Polls an ingest job until it ends: its failure's reason, or null when it worked. */
export async function awaitJob(jobId: string): Promise<string | null> {
  for (let wait = 150; ; wait = Math.min(wait * 1.5, 1500)) {
    const job = await get<Job>(`/api/v1/ingest/${seg(jobId)}`);
    if (job.status === "failed") return job.error?.message ?? "the file could not be ingested";
    if (job.status !== "running") return null;
    await new Promise((r) => setTimeout(r, wait));
  }
}

/** The files of a drop, folders walked. */
export async function droppedFiles(dt: DataTransfer): Promise<File[]> {
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => !!e);
  if (!entries.length) return [...dt.files];
  const out: File[] = [];
  const walk = async (e: FileSystemEntry): Promise<void> => {
    if (e.isFile) out.push(await new Promise<File>((res, rej) => (e as FileSystemFileEntry).file(res, rej)));
    else if (e.isDirectory) {
      const reader = (e as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    }
  };
  for (const e of entries) await walk(e);
  return out;
}
