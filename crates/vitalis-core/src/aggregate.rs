//! **Aggregation: the one place where the rules of SPEC section 1 live.**
//!
//! 1. A component's status is the worst status of its counted checks, each
//!    capped by its impact ([`component_status`]).
//! 2. A failing critical component fails the system; a failing non-critical
//!    one degrades it to `warn` ([`contribution`]).
//! 3. A redundancy set (`min_passing = N`) is judged as a whole
//!    ([`group_status`]); its members contribute only through it.
//! 4. Root causes follow failing edges only ([`root_causes`]).
//!
//! A check's status reaches these functions already *effective*: `unknown`
//! past its grace counts as `fail` (see [`effective`]), and a check that is
//! inactive, outside the view or excluded is `None` and not counted.
//!
//! The engine applies these functions incrementally as results arrive (to
//! emit every transition) and in full when it publishes a snapshot; the
//! full pass, [`aggregate`], is also what `?exclude=` uses.

use crate::model::{Impact, Level, Status};
use crate::topology::{NodeRef, Topology};

/// Which checks a view counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// `live` checks only (`/health/live`).
    Live,
    /// `live` and `ready` checks (`/health/ready`).
    Ready,
    /// Every active check (`/health`).
    All,
}

impl View {
    /// The three views, narrowest first.
    pub const ALL: [View; 3] = [View::Live, View::Ready, View::All];

    /// Whether a check at `level` is counted in this view.
    pub fn counts(self, level: Level) -> bool {
        match self {
            View::Live => level == Level::Live,
            View::Ready => level <= Level::Ready,
            View::All => true,
        }
    }

    /// Position in [`View::ALL`].
    pub const fn index(self) -> usize {
        match self {
            View::Live => 0,
            View::Ready => 1,
            View::All => 2,
        }
    }
}

/// A check's status as aggregation counts it: `unknown` past the grace is `fail`.
pub fn effective(status: Status, past_grace: bool) -> Status {
    if status == Status::Unknown && past_grace {
        Status::Fail
    } else {
        status
    }
}

/// Rule 1: the worst of the counted checks' statuses, each capped by its
/// impact; `None` when no check is counted.
pub fn component_status(checks: impl IntoIterator<Item = (Status, Impact)>) -> Option<Status> {
    Status::worst_of(checks.into_iter().map(|(s, impact)| impact.cap(s)))
}

/// Rule 3 (and plain groups): a plain group is the worst of its members; a
/// redundancy set needing `min_passing` is `pass` with every member up,
/// `warn` with at least N up and some failing, `fail` with fewer than N up.
/// Members still `unknown` (before their grace ends): when the verdict
/// depends on how they turn out, the set reads `warn` if it is degraded in
/// every case (a member fails), else `unknown`.
/// Members not counted (`None`) are left out; a set with none is `None`.
pub fn group_status(
    min_passing: Option<u32>,
    members: impl IntoIterator<Item = Option<Status>>,
) -> Option<Status> {
    let members = members.into_iter().flatten();
    let Some(n) = min_passing else {
        return Status::worst_of(members);
    };
    let (mut counted, mut up, mut unknown) = (0u32, 0u32, 0u32);
    for s in members {
        counted += 1;
        match s {
            Status::Pass | Status::Warn => up += 1,
            Status::Unknown => unknown += 1,
            Status::Fail => {}
        }
    }
    if counted == 0 {
        return None;
    }
    // The verdict with `up` members up: all up → pass, at least N → warn, else fail.
    let verdict = |up: u32| {
        if up == counted {
            Status::Pass
        } else if up >= n {
            Status::Warn
        } else {
            Status::Fail
        }
    };
    // Unknown members could turn out either way. When the verdict depends on
    // them, the set is at least as bad as its best case: `warn` when even
    // with all of them up a member fails (degraded either way — and adding
    // a passing member never makes the set read worse), else `unknown`.
    let (worst, best) = (verdict(up), verdict(up + unknown));
    Some(if worst == best {
        worst
    } else {
        best.worst(Status::Unknown)
    })
}

/// Rule 2: what a component or redundancy set does to the system.
pub fn contribution(status: Status, critical: bool) -> Status {
    match status {
        Status::Fail if !critical => Status::Warn,
        s => s,
    }
}

/// The full verdict of one view.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Per component (by index); `None` when none of its checks is counted.
    pub components: Vec<Option<Status>>,
    /// Per group (by index).
    pub groups: Vec<Option<Status>>,
    /// The system.
    pub system: Status,
    /// Failing components none of whose direct dependencies fail, by index, in order.
    pub root_causes: Vec<usize>,
    /// Per component: the root causes it is impacted by (empty unless it
    /// fails because something it depends on fails).
    pub impacted_by: Vec<Vec<usize>>,
}

impl Aggregate {
    /// The components (by index) that root cause `root` impacts: those whose
    /// `impacted_by` names it.
    pub fn impacts(&self, root: usize) -> impl Iterator<Item = usize> + '_ {
        self.impacted_by
            .iter()
            .enumerate()
            .filter(move |(_, roots)| roots.contains(&root))
            .map(|(i, _)| i)
    }
}

/// Aggregates one view in full. `check_status(i)` gives check `i`'s
/// effective status, or `None` when it is not counted.
pub fn aggregate(topo: &Topology, check_status: impl Fn(usize) -> Option<Status>) -> Aggregate {
    let components: Vec<Option<Status>> = topo
        .components
        .iter()
        .map(|c| {
            component_status(
                c.checks
                    .clone()
                    .filter_map(|k| Some((check_status(k)?, topo.checks[k].impact))),
            )
        })
        .collect();
    let groups: Vec<Option<Status>> = topo
        .groups
        .iter()
        .map(|g| group_status(g.min_passing, g.members.iter().map(|&m| components[m])))
        .collect();
    let system = system_status(topo, &components, &groups);
    let (root_causes, impacted_by) = root_causes(topo, &components, &groups);
    Aggregate {
        components,
        groups,
        system,
        root_causes,
        impacted_by,
    }
}

/// Rule 2 and 3 over the whole system: the worst contribution of every
/// component outside redundancy sets and of every redundancy set; `pass`
/// when nothing is counted.
pub fn system_status(
    topo: &Topology,
    components: &[Option<Status>],
    groups: &[Option<Status>],
) -> Status {
    let from_components = topo.components.iter().zip(components).filter_map(|(c, s)| {
        let in_set = c.group.is_some_and(|g| topo.groups[g].is_redundancy_set());
        (!in_set).then_some(contribution((*s)?, c.info.critical))
    });
    let from_sets = topo
        .groups
        .iter()
        .zip(groups)
        .filter(|(g, _)| g.is_redundancy_set())
        .filter_map(|(g, s)| Some(contribution((*s)?, g.critical)));
    Status::worst_of(from_components.chain(from_sets)).unwrap_or(Status::Pass)
}

/// Rule 4: root causes and what each failing component is impacted by.
///
/// A dependency is failing when its status is `fail` (a group dependency
/// stands for its failing members). A failing component is a root cause when
/// none of its direct dependencies is failing; otherwise it is impacted by
/// the root causes reachable through failing components only.
pub fn root_causes(
    topo: &Topology,
    components: &[Option<Status>],
    groups: &[Option<Status>],
) -> (Vec<usize>, Vec<Vec<usize>>) {
    let failing_component = |i: usize| components[i] == Some(Status::Fail);
    let failing = |n: NodeRef| match n {
        NodeRef::Component(i) => failing_component(i),
        NodeRef::Group(g) => groups[g] == Some(Status::Fail),
    };
    let is_root: Vec<bool> = (0..topo.components.len())
        .map(|i| failing_component(i) && !topo.components[i].deps.iter().any(|&d| failing(d)))
        .collect();
    let roots: Vec<usize> = (0..topo.components.len()).filter(|&i| is_root[i]).collect();

    // Memoised walk over failing edges; the graph is acyclic (validated).
    let mut memo: Vec<Option<Vec<usize>>> = vec![None; topo.components.len()];
    let mut impacted_by = vec![Vec::new(); topo.components.len()];
    for i in 0..topo.components.len() {
        if failing_component(i) && !is_root[i] {
            impacted_by[i] =
                reach_roots(topo, i, &is_root, &failing, &failing_component, &mut memo);
        }
    }
    (roots, impacted_by)
}

/// The roots reachable from failing, non-root component `i` through failing
/// components (group dependencies expand to their failing members).
fn reach_roots(
    topo: &Topology,
    i: usize,
    is_root: &[bool],
    failing: &impl Fn(NodeRef) -> bool,
    failing_component: &impl Fn(usize) -> bool,
    memo: &mut Vec<Option<Vec<usize>>>,
) -> Vec<usize> {
    if let Some(done) = &memo[i] {
        return done.clone();
    }
    let mut found = Vec::new();
    for &d in &topo.components[i].deps {
        if !failing(d) {
            continue;
        }
        let targets: Vec<usize> = match d {
            NodeRef::Component(c) => vec![c],
            NodeRef::Group(g) => topo.groups[g]
                .members
                .iter()
                .copied()
                .filter(|&m| failing_component(m))
                .collect(),
        };
        for t in targets {
            if is_root[t] {
                found.push(t);
            } else {
                found.extend(reach_roots(
                    topo,
                    t,
                    is_root,
                    failing,
                    failing_component,
                    memo,
                ));
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    memo[i] = Some(found.clone());
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_fn;
    use crate::model::Outcome;
    use crate::spec::{CheckSpec, Component, Group};
    use Status::*;

    fn comp(id: &str) -> Component {
        Component::new(id).check(CheckSpec::live(
            "up",
            check_fn(|_| async { Outcome::pass("ok") }),
        ))
    }

    #[test]
    fn redundancy_sets() {
        assert_eq!(group_status(Some(1), [Some(Pass), Some(Warn)]), Some(Pass));
        assert_eq!(group_status(Some(1), [Some(Pass), Some(Fail)]), Some(Warn));
        assert_eq!(group_status(Some(2), [Some(Pass), Some(Fail)]), Some(Fail));
        assert_eq!(
            group_status(Some(1), [Some(Unknown), Some(Unknown)]),
            Some(Unknown)
        );
        assert_eq!(
            group_status(Some(1), [Some(Pass), Some(Unknown)]),
            Some(Unknown)
        );
        assert_eq!(group_status(Some(1), [None, Some(Fail)]), Some(Fail));
        // A failing member and an unknown one: down or degraded, never pass.
        assert_eq!(
            group_status(Some(1), [Some(Fail), Some(Unknown)]),
            Some(Warn)
        );
        assert_eq!(
            group_status(Some(2), [Some(Fail), Some(Unknown)]),
            Some(Fail)
        );
        assert_eq!(group_status(Some(1), [None, None]), None);
        assert_eq!(
            group_status(None, [Some(Pass), Some(Unknown)]),
            Some(Unknown)
        );
    }

    #[test]
    fn chain_with_a_passing_middle_keeps_the_top_its_own_root_cause() {
        // a -> b -> c, b passing: a and c are both root causes.
        let t = Topology::build(
            &[],
            &[
                comp("a").depends_on("b"),
                comp("b").depends_on("c"),
                comp("c"),
            ],
        )
        .unwrap();
        let s = [Fail, Pass, Fail];
        let agg = aggregate(&t, |k| Some(s[k]));
        assert_eq!(agg.root_causes, vec![0, 2]);
        assert!(agg.impacted_by[0].is_empty());
        // b failing too: a is impacted by c only.
        let s = [Fail, Fail, Fail];
        let agg = aggregate(&t, |k| Some(s[k]));
        assert_eq!(agg.root_causes, vec![2]);
        assert_eq!(agg.impacted_by[0], vec![2]);
        assert_eq!(agg.impacted_by[1], vec![2]);
    }

    #[test]
    fn group_dependencies_stand_for_their_failing_members() {
        let t = Topology::build(
            &[Group::new("feeds").min_passing(1).critical(true)],
            &[
                comp("p").group("feeds"),
                comp("f").group("feeds"),
                comp("trader").critical(true).depends_on("feeds"),
            ],
        )
        .unwrap();
        // One feed down: the set warns, the trader's failure is its own.
        let agg = aggregate(&t, |k| Some([Fail, Pass, Fail][k]));
        assert_eq!(agg.groups[0], Some(Warn));
        assert_eq!(agg.root_causes, vec![0, 2]);
        assert_eq!(agg.system, Fail);
        // Both down: the set fails and the trader is impacted by both feeds.
        let agg = aggregate(&t, |k| Some([Fail, Fail, Fail][k]));
        assert_eq!(agg.root_causes, vec![0, 1]);
        assert_eq!(agg.impacted_by[2], vec![0, 1]);
        // Members' own criticality does not apply inside a set; one feed down only warns.
        let agg = aggregate(&t, |k| Some([Fail, Pass, Pass][k]));
        assert_eq!(agg.system, Warn);
    }

    #[test]
    fn impact_and_criticality() {
        let t = Topology::build(
            &[],
            &[
                Component::new("db")
                    .critical(true)
                    .check(CheckSpec::live(
                        "up",
                        check_fn(|_| async { Outcome::pass("") }),
                    ))
                    .check(
                        CheckSpec::deep("backup", check_fn(|_| async { Outcome::pass("") }))
                            .impact(Impact::Warn),
                    ),
                comp("reports"),
            ],
        )
        .unwrap();
        let agg = aggregate(&t, |k| Some([Pass, Fail, Pass][k]));
        assert_eq!((agg.components[0], agg.system), (Some(Warn), Warn));
        let agg = aggregate(&t, |k| Some([Pass, Pass, Fail][k]));
        assert_eq!((agg.components[1], agg.system), (Some(Fail), Warn));
        let agg = aggregate(&t, |k| Some([Fail, Pass, Pass][k]));
        assert_eq!(agg.system, Fail);
        // Nothing counted: pass, components None.
        let agg = aggregate(&t, |_| None);
        assert_eq!((agg.components[0], agg.system), (None, Pass));
        assert_eq!(effective(Unknown, true), Fail);
        assert_eq!(effective(Unknown, false), Unknown);
    }
}
