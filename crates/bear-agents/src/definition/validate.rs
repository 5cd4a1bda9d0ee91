//! [`Workflow::validate`]'s checks, one method per rule, gathering every problem with its path
//! before any plan is made.

use super::*;

/// What one step resolved to while it is checked.
struct Draft {
    kind: Option<StepKind>,
    agent: AgentRef,
    templated: bool,
    deps: BTreeSet<usize>,
    timeout: Duration,
}

/// Checks one workflow against a catalog.
pub(super) struct Validator<'a> {
    workflow: &'a Workflow,
    catalog: &'a Catalog,
    problems: Vec<Problem>,
    index: HashMap<StepId, usize>,
    ids: Vec<Option<StepId>>,
    drafts: Vec<Draft>,
}

impl<'a> Validator<'a> {
    pub(super) fn new(workflow: &'a Workflow, catalog: &'a Catalog) -> Self {
        Self {
            workflow,
            catalog,
            problems: Vec::new(),
            index: HashMap::with_capacity(workflow.steps.len()),
            ids: Vec::with_capacity(workflow.steps.len()),
            drafts: Vec::with_capacity(workflow.steps.len()),
        }
    }

    fn add(&mut self, path: String, message: String) {
        self.problems.push(Problem { path, message });
    }

    /// Runs every check; the plan, or every problem found.
    pub(super) fn run(mut self) -> Result<Plan> {
        self.check_header();
        self.check_inputs();
        // Ids first, so that every reference can be checked.
        self.index_ids();
        let env = template_env();
        for i in 0..self.workflow.steps.len() {
            let draft = self.check_step(i, &env);
            self.drafts.push(draft);
        }
        self.check_cycles();
        self.into_plan()
    }

    fn check_header(&mut self) {
        let w = self.workflow;
        if w.name.trim().is_empty() {
            self.add("name".into(), "must not be empty".into());
        }
        if w.steps.is_empty() {
            self.add("steps".into(), "a workflow needs at least one step".into());
        }
        if w.steps.len() > MAX_STEPS {
            self.add(
                "steps".into(),
                format!("more than {MAX_STEPS} steps; split the workflow"),
            );
        }
    }

    fn check_inputs(&mut self) {
        for name in self.workflow.inputs.keys() {
            if !is_identifier(name) {
                self.add(
                    format!("inputs.{name}"),
                    "input names are letters, digits and `_`, not starting with a digit".into(),
                );
            }
        }
    }

    fn index_ids(&mut self) {
        for (i, step) in self.workflow.steps.iter().enumerate() {
            let id = match StepId::new(step.id.clone()) {
                Ok(id) => id,
                Err(e) => {
                    self.add(format!("steps[{i}].id"), e.to_string());
                    self.ids.push(None);
                    continue;
                }
            };
            if let Some(first) = self.index.get(&id) {
                let message = format!("duplicate id `{id}` (first used at steps[{first}])");
                self.add(format!("steps[{i}].id"), message);
                self.ids.push(None);
            } else {
                self.index.insert(id.clone(), i);
                self.ids.push(Some(id));
            }
        }
    }

    /// The index of step `name`, if it names one.
    fn step_index(&self, name: &str) -> Option<usize> {
        StepId::new(name.to_string())
            .ok()
            .and_then(|d| self.index.get(&d).copied())
    }

    fn check_step(&mut self, i: usize, env: &minijinja::Environment<'static>) -> Draft {
        let kind = self.check_type(i);
        let mut deps = self.check_depends_on(i);
        let timeout = self.check_timeout(i);
        self.check_limits(i);
        let templated = self.check_references(i, env, &mut deps);
        let agent = kind.map_or(AgentRef::Any, |k| self.check_parameters_and_agent(i, k));
        Draft {
            kind,
            agent,
            templated,
            deps,
            timeout,
        }
    }

    fn check_type(&mut self, i: usize) -> Option<StepKind> {
        let step = &self.workflow.steps[i];
        let kind = StepKind::parse(&step.kind);
        if kind.is_none() {
            let message = format!(
                "unknown step type `{}`; expected one of: {}",
                step.kind,
                StepKind::ALL.map(StepKind::as_str).join(", ")
            );
            self.add(format!("steps[{i}].type"), message);
        }
        kind
    }

    fn check_depends_on(&mut self, i: usize) -> BTreeSet<usize> {
        let mut deps = BTreeSet::new();
        for (j, dep) in self.workflow.steps[i].depends_on.iter().enumerate() {
            let path = format!("steps[{i}].depends_on[{j}]");
            match self.step_index(dep) {
                Some(d) if d == i => self.add(path, "a step cannot depend on itself".into()),
                Some(d) => {
                    deps.insert(d);
                }
                None => self.add(path, format!("unknown step `{dep}`")),
            }
        }
        deps
    }

    fn check_timeout(&mut self, i: usize) -> Duration {
        match self.workflow.steps[i].timeout {
            None => self.catalog.default_timeout,
            Some(t) if t.is_finite() && t > 0.0 && t <= MAX_TIMEOUT_SECS => {
                Duration::from_secs_f64(t)
            }
            Some(_) => {
                self.add(
                    format!("steps[{i}].timeout"),
                    format!("must be a number of seconds in (0, {MAX_TIMEOUT_SECS}]"),
                );
                self.catalog.default_timeout
            }
        }
    }

    fn check_limits(&mut self, i: usize) {
        let step = &self.workflow.steps[i];
        if step.retries > MAX_RETRIES {
            self.add(
                format!("steps[{i}].retries"),
                format!("at most {MAX_RETRIES}"),
            );
        }
        if !step.parameters.is_object() {
            self.add(format!("steps[{i}].parameters"), "must be an object".into());
        }
    }

    /// References in parameter strings: each must parse and name a declared input or another
    /// step's `output`; a step referenced becomes a dependency. Whether any string is a
    /// template.
    fn check_references(
        &mut self,
        i: usize,
        env: &minijinja::Environment<'static>,
        deps: &mut BTreeSet<usize>,
    ) -> bool {
        let mut templated = false;
        let mut refs = Vec::new();
        visit_strings(
            &self.workflow.steps[i].parameters,
            "parameters",
            &mut |path, s| {
                if !s.contains("{{") && !s.contains("{%") {
                    return;
                }
                templated = true;
                match env.template_from_str(s) {
                    Ok(t) => {
                        for var in t.undeclared_variables(false) {
                            if var != "steps" && var != "inputs" {
                                refs.push((path.to_string(), Ref::Unknown(var)));
                            }
                        }
                        refs.extend(references(s).into_iter().map(|r| (path.to_string(), r)));
                    }
                    Err(e) => refs.push((path.to_string(), Ref::Syntax(e.kind().to_string()))),
                }
            },
        );
        for (path, r) in refs {
            self.check_reference(i, format!("steps[{i}].{path}"), r, deps);
        }
        templated
    }

    fn check_reference(&mut self, i: usize, p: String, r: Ref, deps: &mut BTreeSet<usize>) {
        match r {
            Ref::Syntax(err) => self.add(p, format!("template syntax: {err}")),
            Ref::Unknown(name) => self.add(
                p,
                format!("unknown reference `{name}`; only `inputs` and `steps` exist"),
            ),
            Ref::Input(name) if !self.workflow.inputs.contains_key(&name) => {
                self.add(
                    p,
                    format!("unknown input `{name}`; declare it under `inputs`"),
                );
            }
            Ref::Input(_) => {}
            Ref::Step(id, field) => match self.step_index(&id) {
                Some(d) if d == i => self.add(p, "a step cannot reference its own output".into()),
                Some(d) => {
                    deps.insert(d);
                    if field.as_deref().is_some_and(|f| f != "output") {
                        self.add(
                            p,
                            format!("write `steps.{id}.output`; steps expose only `output`"),
                        );
                    }
                }
                None => self.add(p, format!("unknown step `{id}`")),
            },
        }
    }

    /// Parameters for the step's type, and the agent that will run it.
    fn check_parameters_and_agent(&mut self, i: usize, kind: StepKind) -> AgentRef {
        let step = &self.workflow.steps[i];
        if let Err(message) = check_parameters(kind, &step.parameters, self.catalog) {
            self.add(format!("steps[{i}].parameters"), message);
        }
        match self.catalog.resolve_agent(step.agent.as_deref(), kind) {
            Ok(a) => a,
            Err(message) => {
                self.add(format!("steps[{i}].agent"), message);
                AgentRef::Any
            }
        }
    }

    /// Cycles, named, over the edges that resolved (reported with the other problems).
    fn check_cycles(&mut self) {
        let n = self.workflow.steps.len();
        let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(n, 0);
        let nodes: Vec<NodeIndex> = (0..n).map(|i| graph.add_node(i)).collect();
        for (i, d) in self.drafts.iter().enumerate() {
            for &dep in &d.deps {
                graph.add_edge(nodes[dep], nodes[i], ());
            }
        }
        if petgraph::algo::toposort(&graph, None).is_ok() {
            return;
        }
        let deps: Vec<&BTreeSet<usize>> = self.drafts.iter().map(|d| &d.deps).collect();
        let mut found = Vec::new();
        for scc in petgraph::algo::tarjan_scc(&graph) {
            if scc.len() < 2 {
                continue;
            }
            let mut members: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
            members.sort_unstable();
            let cycle = name_cycle(&members, &deps);
            let names: Vec<&str> = cycle
                .iter()
                .map(|&m| self.workflow.steps[m].id.as_str())
                .collect();
            found.push(Problem {
                path: format!("steps[{}].depends_on", cycle[0]),
                message: format!("dependency cycle: {} -> {}", names.join(" -> "), names[0]),
            });
        }
        self.problems.extend(found);
    }

    /// The plan, if nothing was wrong.
    fn into_plan(self) -> Result<Plan> {
        if !self.problems.is_empty() {
            return Err(Error::Invalid {
                problems: Problems(self.problems),
            });
        }
        let mut dependents = vec![Vec::new(); self.workflow.steps.len()];
        let steps = self
            .drafts
            .into_iter()
            .zip(self.ids)
            .zip(&self.workflow.steps)
            .enumerate()
            .map(|(i, ((draft, id), def))| {
                for &d in &draft.deps {
                    dependents[d].push(i);
                }
                PlannedStep {
                    id: id.expect("checked above"),
                    kind: draft.kind.expect("checked above"),
                    agent: draft.agent,
                    parameters: def.parameters.clone(),
                    templated: draft.templated,
                    deps: draft.deps.into_iter().collect(),
                    timeout: draft.timeout,
                    retries: def.retries,
                }
            })
            .collect();
        Ok(Plan {
            workflow: self.workflow.clone(),
            steps,
            dependents,
            index: self.index,
        })
    }
}
