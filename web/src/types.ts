// The API's shapes the app reads (see /api/v1/openapi.json for the whole description).

export interface Session {
  key_id: string;
  role: "admin" | "user" | "read_only";
  csrf_token: string;
  expires_in: number;
}

export interface Collection {
  name: string;
  pii_policy: string;
  embedder: string;
  documents: number;
  chunks: number;
  created_at: number;
  sealed: boolean;
}

export interface DocumentView {
  id: string;
  path: string;
  title: string;
  page_count: number | null;
  mime: string;
  size: number;
  chunks: number;
  ingested_at: number;
}

export interface SearchHit {
  chunk_id: string;
  document_id: string;
  path: string;
  title: string;
  page: number | null;
  text: string;
  citation: string;
  score: number;
  char_range: [number, number];
}

export interface Source extends SearchHit {
  marker: number;
  cited: boolean;
  verified: boolean;
  collection?: string;
}

export interface Span {
  document_id: string;
  page: number | null;
  text: string;
  source_bytes: [number, number];
  source_chars: [number, number];
}

export interface Citation {
  marker: number;
  sentence: [number, number];
  verified: boolean;
  added: boolean;
  span?: Span;
  reason?: string;
}

export interface AskResponse {
  answer: string;
  sources: Source[];
  cited: number[];
  citations: Citation[];
  strict: boolean;
  removed_sentences: number;
  unsupported_sentences: [number, number][];
  refusal?: "nothing_relevant" | "key_terms_missing" | "nothing_verified";
  relevant: boolean;
  elapsed_ms: number;
}

export interface Job {
  job_id: string;
  status: string;
  error?: { message: string } | null;
}

export interface ModelRow {
  id: string;
  name: string;
  size: number;
  status: string;
  kind: string;
  meta: { quantization: string | null; parameter_count: number | null; context_length: number | null; has_chat_template: boolean };
  performance_metrics: Record<string, number>;
}

export interface Finding {
  entity: string;
  char_start: number;
  char_end: number;
  score: number;
  recognizer: string;
}

export interface StepState {
  id: string;
  status: string;
  agent?: string | null;
  depends_on?: string[];
  duration_ms?: number | null;
  attempts?: number;
  output?: unknown;
  error?: string | null;
}

export interface RunStatus {
  id: string;
  name: string;
  status: string;
  interrupted: boolean;
  execution_time: number;
  results: Record<string, unknown>;
  progress: { completed: number; total: number; steps: StepState[] };
}

export interface RunRow {
  id: string;
  name: string;
  status: string;
  created_at: string;
  interrupted: boolean;
  progress: { completed: number; total: number };
}

export interface KeyView {
  id: string;
  role: string;
  label: string | null;
  created_at: string;
}
