//! The registry compiled for aggregation: components, groups, checks and the
//! dependency graph, validated (ids, duplicates, unknown dependencies,
//! cycles) and laid out as indexes so aggregation never hashes strings.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use crate::model::{Impact, Level};
use crate::spec::{Component, Group, Source, is_valid_id};

/// A dependency target: a component or a group, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRef {
    /// `Topology::components[i]`.
    Component(usize),
    /// `Topology::groups[i]`.
    Group(usize),
}

/// A component's static description, shared by snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentInfo {
    /// Identifier.
    pub id: Arc<str>,
    /// Display name.
    pub name: String,
    /// Group id, if any.
    pub group: Option<Arc<str>>,
    /// Whether its failure fails the system.
    pub critical: bool,
    /// Declared dependencies (ids).
    pub depends_on: Vec<String>,
    /// Free labels.
    pub labels: BTreeMap<String, String>,
    /// Owning team.
    pub owner: Option<String>,
    /// Runbook.
    pub runbook_url: Option<String>,
    /// Alert severity override.
    pub severity: Option<String>,
    /// Where it was declared.
    pub source: Source,
}

/// A component in the compiled graph.
#[derive(Debug, Clone)]
pub struct ComponentNode {
    /// Its description.
    pub info: Arc<ComponentInfo>,
    /// Index of its group.
    pub group: Option<usize>,
    /// Resolved dependencies.
    pub deps: Vec<NodeRef>,
    /// Its checks: a contiguous range of `Topology::checks`.
    pub checks: Range<usize>,
}

/// A group in the compiled graph.
#[derive(Debug, Clone)]
pub struct GroupNode {
    /// Identifier.
    pub id: Arc<str>,
    /// Whether a failing redundancy set fails the system.
    pub critical: bool,
    /// Set for redundancy sets.
    pub min_passing: Option<u32>,
    /// Alert severity override.
    pub severity: Option<String>,
    /// Whether it was declared (or only named by a component).
    pub declared: bool,
    /// Member components, by index.
    pub members: Vec<usize>,
}

impl GroupNode {
    /// Whether the group is a redundancy set (judged as a whole).
    pub fn is_redundancy_set(&self) -> bool {
        self.min_passing.is_some()
    }
}

/// A check's static description.
#[derive(Debug, Clone)]
pub struct CheckInfo {
    /// Index of its component.
    pub component: usize,
    /// Name within the component.
    pub name: Arc<str>,
    /// Probe type.
    pub kind: Arc<str>,
    /// Level.
    pub level: Level,
    /// Impact.
    pub impact: Impact,
    /// Alert severity override.
    pub severity: Option<String>,
}

/// The validated, indexed registry.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Components in declaration order.
    pub components: Vec<ComponentNode>,
    /// Declared groups first, then implicit ones.
    pub groups: Vec<GroupNode>,
    /// All checks, grouped by component.
    pub checks: Vec<CheckInfo>,
    index: HashMap<Arc<str>, NodeRef>,
}

/// Why a set of declarations cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// An id outside `[a-z0-9][a-z0-9_.-]*`.
    #[error(
        "{what} id '{id}' is invalid: ids are lowercase letters, digits, '_', '.', '-', starting with a letter or digit"
    )]
    InvalidId {
        /// `component`, `group` or `check`.
        what: &'static str,
        /// The offending id.
        id: String,
    },
    /// Two components, two groups, or a component and a group share an id.
    #[error("duplicate id '{0}': component and group ids share one namespace")]
    Duplicate(String),
    /// Two checks of one component share a name.
    #[error("component '{component}': duplicate check name '{check}'")]
    DuplicateCheck {
        /// The component.
        component: String,
        /// The repeated check name.
        check: String,
    },
    /// A component without checks.
    #[error("component '{0}' has no checks: declare at least one [[component.check]]")]
    NoChecks(String),
    /// A dependency on nothing.
    #[error(
        "component '{component}' depends on '{dependency}', which is neither a component nor a group"
    )]
    UnknownDependency {
        /// The dependent component.
        component: String,
        /// The missing id.
        dependency: String,
    },
    /// A dependency cycle, written as the path that closes it.
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// `min_passing = 0`.
    #[error("group '{0}': min_passing must be at least 1")]
    ZeroMinPassing(String),
    /// Removing a component that is not registered.
    #[error("no component '{0}' to remove")]
    NotFound(String),
    /// The engine is no longer running.
    #[error("the engine has stopped")]
    Stopped,
}

impl Topology {
    /// Validates and compiles declarations.
    pub fn build(groups: &[Group], components: &[Component]) -> Result<Self, RegistryError> {
        let mut index: HashMap<Arc<str>, NodeRef> = HashMap::new();
        let mut group_nodes: Vec<GroupNode> = Vec::new();
        for g in groups {
            if !is_valid_id(&g.id) {
                return Err(RegistryError::InvalidId {
                    what: "group",
                    id: g.id.clone(),
                });
            }
            if g.min_passing == Some(0) {
                return Err(RegistryError::ZeroMinPassing(g.id.clone()));
            }
            let id: Arc<str> = g.id.as_str().into();
            if index
                .insert(id.clone(), NodeRef::Group(group_nodes.len()))
                .is_some()
            {
                return Err(RegistryError::Duplicate(g.id.clone()));
            }
            group_nodes.push(GroupNode {
                id,
                critical: g.critical,
                min_passing: g.min_passing,
                severity: g.severity.clone(),
                declared: true,
                members: Vec::new(),
            });
        }
        // Components (implicit groups appear as they are named).
        let mut comps = Vec::with_capacity(components.len());
        let mut checks = Vec::new();
        for c in components {
            if !is_valid_id(&c.id) {
                return Err(RegistryError::InvalidId {
                    what: "component",
                    id: c.id.clone(),
                });
            }
            if c.checks.is_empty() {
                return Err(RegistryError::NoChecks(c.id.clone()));
            }
            let ci = comps.len();
            let id: Arc<str> = c.id.as_str().into();
            if index.contains_key(&id) {
                return Err(RegistryError::Duplicate(c.id.clone()));
            }
            let group = match &c.group {
                None => None,
                Some(g) => {
                    if !is_valid_id(g) {
                        return Err(RegistryError::InvalidId {
                            what: "group",
                            id: g.clone(),
                        });
                    }
                    match index.get(g.as_str()) {
                        Some(NodeRef::Group(gi)) => Some(*gi),
                        Some(NodeRef::Component(_)) => {
                            return Err(RegistryError::Duplicate(g.clone()));
                        }
                        None => {
                            let gi = group_nodes.len();
                            let gid: Arc<str> = g.as_str().into();
                            index.insert(gid.clone(), NodeRef::Group(gi));
                            group_nodes.push(GroupNode {
                                id: gid,
                                critical: false,
                                min_passing: None,
                                severity: None,
                                declared: false,
                                members: Vec::new(),
                            });
                            Some(gi)
                        }
                    }
                }
            };
            if let Some(gi) = group {
                group_nodes[gi].members.push(ci);
            }
            index.insert(id.clone(), NodeRef::Component(ci));
            let start = checks.len();
            for (n, k) in c.checks.iter().enumerate() {
                if !is_valid_id(&k.name) {
                    return Err(RegistryError::InvalidId {
                        what: "check",
                        id: k.name.clone(),
                    });
                }
                if c.checks[..n].iter().any(|o| o.name == k.name) {
                    return Err(RegistryError::DuplicateCheck {
                        component: c.id.clone(),
                        check: k.name.clone(),
                    });
                }
                checks.push(CheckInfo {
                    component: ci,
                    name: k.name.as_str().into(),
                    kind: k.kind.as_str().into(),
                    level: k.level,
                    impact: k.impact,
                    severity: k.settings.severity.clone(),
                });
            }
            comps.push(ComponentNode {
                info: Arc::new(ComponentInfo {
                    id,
                    name: c.name.clone(),
                    group: c.group.as_deref().map(Arc::from),
                    critical: c.critical,
                    depends_on: c.depends_on.clone(),
                    labels: c.labels.clone(),
                    owner: c.owner.clone(),
                    runbook_url: c.runbook_url.clone(),
                    severity: c.severity.clone(),
                    source: c.source,
                }),
                group,
                deps: Vec::new(),
                checks: start..checks.len(),
            });
        }
        for (ci, c) in components.iter().enumerate() {
            let mut deps = Vec::with_capacity(c.depends_on.len());
            for d in &c.depends_on {
                match index.get(d.as_str()) {
                    Some(r) if !deps.contains(r) => deps.push(*r),
                    Some(_) => {}
                    None => {
                        return Err(RegistryError::UnknownDependency {
                            component: c.id.clone(),
                            dependency: d.clone(),
                        });
                    }
                }
            }
            comps[ci].deps = deps;
        }
        let topo = Topology {
            components: comps,
            groups: group_nodes,
            checks,
            index,
        };
        topo.check_acyclic()?;
        Ok(topo)
    }

    /// Looks up a component or group by id.
    pub fn node(&self, id: &str) -> Option<NodeRef> {
        self.index.get(id).copied()
    }

    /// Looks up a component by id.
    pub fn component(&self, id: &str) -> Option<usize> {
        match self.node(id) {
            Some(NodeRef::Component(i)) => Some(i),
            _ => None,
        }
    }

    /// Looks up a group by id.
    pub fn group(&self, id: &str) -> Option<usize> {
        match self.node(id) {
            Some(NodeRef::Group(i)) => Some(i),
            _ => None,
        }
    }

    /// Looks up a check by component id and check name.
    pub fn check(&self, component: &str, check: &str) -> Option<usize> {
        let c = self.component(component)?;
        self.components[c]
            .checks
            .clone()
            .find(|&k| &*self.checks[k].name == check)
    }

    /// The id of a node.
    pub fn node_id(&self, node: NodeRef) -> &Arc<str> {
        match node {
            NodeRef::Component(i) => &self.components[i].info.id,
            NodeRef::Group(i) => &self.groups[i].id,
        }
    }

    /// Edges of the dependency graph: a component's dependencies; a group's members.
    fn edges(&self, node: NodeRef) -> Vec<NodeRef> {
        match node {
            NodeRef::Component(i) => self.components[i].deps.clone(),
            NodeRef::Group(i) => self.groups[i]
                .members
                .iter()
                .map(|&m| NodeRef::Component(m))
                .collect(),
        }
    }

    fn check_acyclic(&self) -> Result<(), RegistryError> {
        // Iterative DFS with colours; the grey stack gives the cycle's path.
        #[derive(Clone, Copy, PartialEq)]
        enum Colour {
            White,
            Grey,
            Black,
        }
        let nc = self.components.len();
        let slot = |n: NodeRef| match n {
            NodeRef::Component(i) => i,
            NodeRef::Group(i) => nc + i,
        };
        let mut colour = vec![Colour::White; nc + self.groups.len()];
        for start in 0..nc {
            if colour[start] != Colour::White {
                continue;
            }
            let mut stack: Vec<(NodeRef, Vec<NodeRef>)> = Vec::new();
            let first = NodeRef::Component(start);
            colour[slot(first)] = Colour::Grey;
            stack.push((first, self.edges(first)));
            while let Some((node, rest)) = stack.last_mut() {
                let node = *node;
                match rest.pop() {
                    Some(next) => match colour[slot(next)] {
                        Colour::White => {
                            colour[slot(next)] = Colour::Grey;
                            let e = self.edges(next);
                            stack.push((next, e));
                        }
                        Colour::Grey => {
                            let from = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                            let mut path: Vec<String> = stack[from..]
                                .iter()
                                .map(|(n, _)| self.node_id(*n).to_string())
                                .collect();
                            path.push(self.node_id(next).to_string());
                            return Err(RegistryError::Cycle(path));
                        }
                        Colour::Black => {}
                    },
                    None => {
                        colour[slot(node)] = Colour::Black;
                        stack.pop();
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_fn;
    use crate::model::Outcome;
    use crate::spec::CheckSpec;

    fn comp(id: &str) -> Component {
        Component::new(id).check(CheckSpec::live(
            "up",
            check_fn(|_| async { Outcome::pass("ok") }),
        ))
    }

    #[test]
    fn builds_groups_implicitly_and_resolves_dependencies() {
        let t = Topology::build(
            &[Group::new("feeds").min_passing(1).critical(true)],
            &[
                comp("primary").group("feeds"),
                comp("failover").group("feeds"),
                comp("trader").group("exchange").depends_on("feeds"),
            ],
        )
        .unwrap();
        assert_eq!(t.groups.len(), 2);
        assert!(t.groups[0].declared && !t.groups[1].declared);
        assert_eq!(t.groups[0].members, vec![0, 1]);
        assert_eq!(t.components[2].deps, vec![NodeRef::Group(0)]);
        assert_eq!(t.check("trader", "up"), Some(2));
    }

    #[test]
    fn rejects_bad_registries() {
        let err =
            |groups: &[Group], comps: &[Component]| Topology::build(groups, comps).unwrap_err();
        assert_eq!(
            err(&[], &[comp("a"), comp("a")]),
            RegistryError::Duplicate("a".into())
        );
        assert_eq!(
            err(&[Group::new("a")], &[comp("a")]),
            RegistryError::Duplicate("a".into())
        );
        assert!(matches!(
            err(&[], &[comp("a").depends_on("ghost")]),
            RegistryError::UnknownDependency { .. }
        ));
        assert!(matches!(
            err(&[], &[comp("Bad")]),
            RegistryError::InvalidId { .. }
        ));
        assert_eq!(
            err(&[], &[Component::new("empty")]),
            RegistryError::NoChecks("empty".into())
        );
        let cycle = err(
            &[],
            &[
                comp("a").depends_on("b"),
                comp("b").depends_on("c"),
                comp("c").depends_on("a"),
            ],
        );
        assert_eq!(cycle.to_string(), "dependency cycle: a -> b -> c -> a");
        // Depending on one's own group is a cycle through membership.
        assert!(matches!(
            err(&[], &[comp("a").group("g").depends_on("g")]),
            RegistryError::Cycle(_)
        ));
        assert_eq!(
            err(&[Group::new("g").min_passing(0)], &[]),
            RegistryError::ZeroMinPassing("g".into())
        );
    }
}
