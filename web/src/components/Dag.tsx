// A run's steps as a graph laid out by dagre (top to bottom), drawn as SVG; each node shows
// its live state and opens the step.
import dagre from "@dagrejs/dagre";
import type { StepState } from "../types";

const W = 150;
const H = 44;

export function Dag(props: { steps: StepState[]; picked: string | null; onPick: (id: string) => void }) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "TB", nodesep: 24, ranksep: 36, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const s of props.steps) g.setNode(s.id, { width: W, height: H });
  for (const s of props.steps) for (const d of s.depends_on ?? []) if (g.hasNode(d)) g.setEdge(d, s.id);
  dagre.layout(g);
  const { width = 0, height = 0 } = g.graph();
  return (
    <svg class="dag" viewBox={`0 0 ${width} ${height}`} width={width} height={height} role="group" aria-label="The run's steps and their order">
      {g.edges().map((e) => {
        const pts = g.edge(e).points;
        return <polyline class="edge" points={pts.map((p: { x: number; y: number }) => `${p.x},${p.y}`).join(" ")} />;
      })}
      {props.steps.map((s) => {
        const n = g.node(s.id);
        return (
          <g
            class={`node ${s.status}${props.picked === s.id ? " picked" : ""}`}
            transform={`translate(${n.x - W / 2},${n.y - H / 2})`}
            role="button"
            tabIndex={0}
            onClick={() => props.onPick(s.id)}
            onKeyDown={(e) => (e.key === "Enter" || e.key === " ") && props.onPick(s.id)}
          >
            <rect width={W} height={H} rx={6} />
            <text x={W / 2} y={18} text-anchor="middle">{s.id}</text>
            <text x={W / 2} y={34} text-anchor="middle" class="sub">{s.status}</text>
          </g>
        );
      })}
    </svg>
  );
}
