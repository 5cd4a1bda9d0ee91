// A PDF page rendered by pdf.js (from npm; this module and its worker load on first use
// only), with the cited passage's text runs highlighted over it. No eval, no remote fonts.
import * as pdfjs from "pdfjs-dist";
import workerUrl from "pdfjs-dist/build/pdf.worker.min.mjs?url";

pdfjs.GlobalWorkerOptions.workerSrc = workerUrl;

const norm = (s: string) => s.replace(/\s+/g, " ").trim();

export async function renderPage(host: HTMLElement, url: string, pageNo: number, passage: string) {
  const doc = await pdfjs.getDocument({ url, isEvalSupported: false, withCredentials: true }).promise;
  const page = await doc.getPage(Math.min(pageNo, doc.numPages));
  // As wide as the panel (at most 1.5 times the page's size), so the page fits a phone too.
  const natural = page.getViewport({ scale: 1 }).width;
  const viewport = page.getViewport({ scale: Math.min(1.5, (host.clientWidth || natural) / natural) });
  const wrap = document.createElement("div");
  wrap.className = "pdf-page";
  wrap.style.width = `${viewport.width}px`;
  wrap.style.height = `${viewport.height}px`;
  const canvas = document.createElement("canvas");
  canvas.width = viewport.width;
  canvas.height = viewport.height;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `Page ${pageNo}`);
  wrap.append(canvas);
  await page.render({ canvas, viewport }).promise;
  const wanted = norm(passage);
  const content = await page.getTextContent();
  for (const item of content.items) {
    if (!("str" in item)) continue;
    const s = norm(item.str);
    if (s.length < 3 || !wanted.includes(s)) continue;
    const [, , , , x, y] = pdfjs.Util.transform(viewport.transform, item.transform);
    const h = item.height * viewport.scale;
    const box = document.createElement("div");
    box.className = "pdf-hl";
    box.style.left = `${x}px`;
    box.style.top = `${y - h}px`;
    box.style.width = `${item.width * viewport.scale}px`;
    box.style.height = `${h}px`;
    wrap.append(box);
  }
  host.replaceChildren(wrap);
  wrap.querySelector(".pdf-hl")?.scrollIntoView({ block: "center" });
}
