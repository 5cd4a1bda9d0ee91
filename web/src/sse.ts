// Server-sent events from a POST (an answer or a generation streaming in), read with
// eventsource-parser from the fetch body; aborting the signal closes the stream, which stops
// the work on the server.
import { createParser } from "eventsource-parser";
import { ApiError, send } from "./api";

export interface StreamEvent {
  event: string;
  data: unknown;
}

/** Posts `body` with `stream: true` and calls `onEvent` for each event until the end. */
export async function streamPost(
  path: string,
  body: Record<string, unknown>,
  onEvent: (e: StreamEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const r = await send("POST", path, { ...body, stream: true }, { accept: "text/event-stream" }, signal);
  await readEvents(r, onEvent);
}

/** Reads an SSE response body to its end. */
export async function readEvents(r: Response, onEvent: (e: StreamEvent) => void): Promise<void> {
  const parser = createParser({
    onEvent(m) {
      let data: unknown = m.data;
      try {
        data = JSON.parse(m.data);
      } catch {
        // Not JSON: pass the text.
      }
      onEvent({ event: m.event ?? "message", data });
    },
  });
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    let chunk: ReadableStreamReadResult<string>;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (e instanceof DOMException && e.name === "AbortError") throw e;
      throw new ApiError(BROKE_OFF, 0, "unreachable");
    }
    if (chunk.done) return;
    parser.feed(chunk.value);
  }
}

const BROKE_OFF =
  "The connection to the BEAR server broke off before the end: it may have stopped. Start it again (`bear ui`) and retry.";
