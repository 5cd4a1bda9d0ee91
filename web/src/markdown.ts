// Model output and document text rendered as markdown, then sanitised by DOMPurify: no script,
// no event handler, no style, no image or frame (nothing that could run or load remote content).
import { marked } from "marked";
import DOMPurify from "dompurify";

const FORBID_TAGS = ["style", "img", "image", "svg", "math", "iframe", "form", "input", "button", "video", "audio", "source", "object", "embed", "link", "meta", "base"];

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") ?? "";
    // Links leave the app only by the user's choice, in a new tab, with no referrer.
    if (!/^https?:|^mailto:/i.test(href)) node.removeAttribute("href");
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/** Sanitised HTML for `md`. */
export function renderMarkdown(md: string): string {
  const html = marked.parse(md, { async: false, gfm: true, breaks: true }) as string;
  return DOMPurify.sanitize(html, { FORBID_TAGS, FORBID_ATTR: ["style", "class", "id"] });
}
