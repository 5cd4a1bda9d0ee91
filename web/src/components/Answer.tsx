// A cited answer: markdown rendered and sanitised, each `[n]` turned into a button that opens
// source n (marked when no citation of source n is verified). The buttons are made after
// sanitising, by this code, never from the answer's text.
import { useLayoutEffect, useRef } from "preact/hooks";
import { renderMarkdown } from "../markdown";

const MARKER = /\[(\d{1,3})\]/g;

function linkMarkers(root: HTMLElement, known: Set<number>, unverified: Set<number>) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const texts: Text[] = [];
  while (walker.nextNode()) texts.push(walker.currentNode as Text);
  for (const t of texts) {
    const s = t.data;
    if (!MARKER.test(s)) continue;
    MARKER.lastIndex = 0;
    const frag = document.createDocumentFragment();
    let last = 0;
    for (const m of s.matchAll(MARKER)) {
      const n = Number(m[1]);
      if (!known.has(n)) continue;
      frag.append(s.slice(last, m.index));
      const b = document.createElement("button");
      const bad = unverified.has(n);
      b.className = bad ? "cite unverified" : "cite";
      b.dataset.marker = String(n);
      b.textContent = bad ? `[${n}?]` : `[${n}]`;
      b.setAttribute("aria-label", bad ? `Open source ${n} (not verified)` : `Open source ${n}`);
      frag.append(b);
      last = m.index! + m[0].length;
    }
    frag.append(s.slice(last));
    t.replaceWith(frag);
  }
}

export function Answer(props: { text: string; markers: number[]; unverified?: number[]; onCite: (n: number) => void }) {
  const ref = useRef<HTMLDivElement>(null);
  // Layout effect: the text is in the DOM in the same task as the token that brought it, not
  // after the next frame.
  useLayoutEffect(() => {
    const el = ref.current!;
    el.innerHTML = renderMarkdown(props.text);
    linkMarkers(el, new Set(props.markers), new Set(props.unverified ?? []));
  }, [props.text, props.markers.join(","), (props.unverified ?? []).join(",")]);
  const click = (e: MouseEvent) => {
    const marker = (e.target as HTMLElement).closest<HTMLElement>("button.cite")?.dataset.marker;
    if (marker) props.onCite(Number(marker));
  };
  return <div class="answer prose" ref={ref} onClick={click} />;
}
