// The DAG drawing with its layout library (dagre) loaded on first use, not with the app.
import { useEffect, useState } from "preact/hooks";
import type { StepState } from "../types";

type DagProps = { steps: StepState[]; picked: string | null; onPick: (id: string) => void };
type DagComponent = (p: DagProps) => preact.JSX.Element;

export function LazyDag(props: DagProps) {
  const [Dag, setDag] = useState<{ c: DagComponent } | null>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    import("./Dag").then((m) => setDag({ c: m.Dag }), () => setFailed(true));
  }, []);
  if (failed) return <p class="muted">The graph could not be drawn; the steps are listed below.</p>;
  return Dag ? <Dag.c {...props} /> : null;
}
