//! Property tests of aggregation (SPEC section 1, "Aggregation" rules 1–4 and
//! the status ordering) against a small reference model.
//!
//! The reference model below is written from the SPEC text, not from
//! `aggregate.rs`: statuses are compared through an explicit rank table,
//! groups are judged by counting their members, and root causes are found by
//! a breadth-first walk over an adjacency list of failing edges. Where the
//! SPEC is silent the model takes the implementation's documented choices:
//!
//! * a component with no counted check has no status (`None`) and is left
//!   out of its groups and of the system;
//! * a plain group with no counted member, and a redundancy set with none,
//!   has no status;
//! * members still `unknown` (before their grace): the model judges the set
//!   under every way its `unknown` members could turn out (up or not up); all
//!   ways agree → that verdict; they disagree but none is `pass` (a member
//!   fails, so the set is degraded whatever happens) → `warn`; else
//!   `unknown`;
//! * the system is `pass` when nothing is counted.
//!
//! One point the SPEC words ambiguously: rule 3's clauses "all members up →
//! `pass`" and "fewer than N up → `fail`" overlap for a set with fewer
//! counted members than N. The model applies the clauses in the order the
//! SPEC lists them (first match wins); see
//! `undersized_redundancy_set_with_an_unknown_member_is_unknown` below.

use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use vitalis_core::aggregate::{Aggregate, aggregate, effective};
use vitalis_core::{
    CheckSpec, Component, Group, Impact, Level, Outcome, Status, Topology, View, check_fn,
};

const CASES: u32 = 512;

/// `CASES` cases per property, and no regression files: a failure prints its
/// minimal input.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
const GROUPS: usize = 4;

// ---------------------------------------------------------------------------
// Generated registries
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum GroupKind {
    /// Declared plain group (its `critical` flag has no effect on a view).
    Plain { critical: bool },
    /// Named by components only: exists implicitly as a plain group.
    Implicit,
    /// Declared redundancy set.
    Set { min_passing: u32, critical: bool },
}

impl GroupKind {
    fn min_passing(self) -> Option<u32> {
        match self {
            GroupKind::Set { min_passing, .. } => Some(min_passing),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct CheckDecl {
    level: Level,
    impact: Impact,
    /// The check's status, `None` when it is not counted (inactive).
    status: Option<Status>,
    /// Whether its grace is over (an `unknown` then counts as `fail`).
    past_grace: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dep {
    Comp(usize),
    Group(usize),
}

#[derive(Debug, Clone)]
struct CompDecl {
    critical: bool,
    group: Option<usize>,
    deps: Vec<Dep>,
    checks: Vec<CheckDecl>,
}

/// Components are numbered by *rank*: every dependency points to a lower
/// rank (a component of lower rank, or a group all of whose members have a
/// lower rank), so the graph of dependency and membership edges is acyclic.
/// They are declared in a random order (`order`), so ranks and indexes differ.
#[derive(Debug, Clone)]
struct Registry {
    groups: Vec<GroupKind>,
    comps: Vec<CompDecl>,
    order: Vec<usize>,
    view: View,
}

fn comp_id(r: usize) -> String {
    format!("k{r}")
}

fn group_id(g: usize) -> String {
    format!("g{g}")
}

fn check_id(j: usize) -> String {
    format!("c{j}")
}

impl Registry {
    fn members(&self, g: usize) -> Vec<usize> {
        (0..self.comps.len())
            .filter(|&r| self.comps[r].group == Some(g))
            .collect()
    }

    /// Whether group `g` exists in the topology (declared, or named).
    fn group_exists(&self, g: usize) -> bool {
        self.groups[g] != GroupKind::Implicit || !self.members(g).is_empty()
    }

    fn build(&self) -> Topology {
        let groups: Vec<Group> = (0..GROUPS)
            .filter_map(|g| match self.groups[g] {
                GroupKind::Implicit => None,
                GroupKind::Plain { critical } => Some(Group::new(group_id(g)).critical(critical)),
                GroupKind::Set {
                    min_passing,
                    critical,
                } => Some(
                    Group::new(group_id(g))
                        .min_passing(min_passing)
                        .critical(critical),
                ),
            })
            .collect();
        let comps: Vec<Component> = self
            .order
            .iter()
            .map(|&r| declare(r, &self.comps[r]))
            .collect();
        Topology::build(&groups, &comps).expect("generated registries are valid and acyclic")
    }

    /// Check statuses by the topology's check index, as the engine hands
    /// them to `aggregate`: filtered by the view, made effective.
    fn check_statuses(&self, topo: &Topology) -> Vec<Option<Status>> {
        let mut out = vec![None; topo.checks.len()];
        for (r, c) in self.comps.iter().enumerate() {
            for (j, k) in c.checks.iter().enumerate() {
                let idx = topo
                    .check(&comp_id(r), &check_id(j))
                    .expect("every declared check is in the topology");
                out[idx] = k
                    .status
                    .filter(|_| self.view.counts(k.level))
                    .map(|s| effective(s, k.past_grace));
            }
        }
        out
    }

    fn run(&self) -> (Topology, Aggregate) {
        let topo = self.build();
        let statuses = self.check_statuses(&topo);
        let agg = aggregate(&topo, |k| statuses[k]);
        (topo, agg)
    }
}

fn declare(r: usize, c: &CompDecl) -> Component {
    let mut comp = Component::new(comp_id(r)).critical(c.critical);
    if let Some(g) = c.group {
        comp = comp.group(group_id(g));
    }
    for d in &c.deps {
        comp = comp.depends_on(match *d {
            Dep::Comp(t) => comp_id(t),
            Dep::Group(g) => group_id(g),
        });
    }
    for (j, k) in c.checks.iter().enumerate() {
        comp = comp.check(
            CheckSpec::new(
                check_id(j),
                k.level,
                check_fn(|_| async { Outcome::pass("") }),
            )
            .impact(k.impact),
        );
    }
    comp
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        3 => Just(Status::Pass),
        1 => Just(Status::Warn),
        2 => Just(Status::Fail),
        1 => Just(Status::Unknown),
    ]
}

fn check_decl() -> impl Strategy<Value = CheckDecl> {
    (
        prop_oneof![Just(Level::Live), Just(Level::Ready), Just(Level::Deep)],
        prop_oneof![3 => Just(Impact::Fail), 1 => Just(Impact::Warn)],
        prop_oneof![1 => Just(None), 7 => status().prop_map(Some)],
        prop::bool::weighted(0.25),
    )
        .prop_map(|(level, impact, status, past_grace)| CheckDecl {
            level,
            impact,
            status,
            past_grace,
        })
}

fn group_kind() -> impl Strategy<Value = GroupKind> {
    prop_oneof![
        1 => any::<bool>().prop_map(|critical| GroupKind::Plain { critical }),
        1 => Just(GroupKind::Implicit),
        2 => (1..=3u32, any::<bool>()).prop_map(|(min_passing, critical)| GroupKind::Set {
            min_passing,
            critical
        }),
    ]
}

/// Before resolution: dependency picks are raw numbers mapped onto the
/// targets that keep the graph acyclic.
type RawComp = (bool, usize, Vec<u16>, Vec<CheckDecl>);

fn raw_comp() -> impl Strategy<Value = RawComp> {
    (
        prop::bool::weighted(0.4),
        0..GROUPS + 2, // GROUPS and GROUPS + 1: no group
        prop::collection::vec(any::<u16>(), 0..=3),
        prop::collection::vec(check_decl(), 1..=3),
    )
}

fn resolve(groups: Vec<GroupKind>, raw: Vec<RawComp>, order: Vec<usize>, view: View) -> Registry {
    let mut reg = Registry {
        groups,
        comps: raw
            .iter()
            .map(|(critical, g, _, checks)| CompDecl {
                critical: *critical,
                group: (*g < GROUPS).then_some(*g),
                deps: Vec::new(),
                checks: checks.clone(),
            })
            .collect(),
        order,
        view,
    };
    for (r, (_, _, picks, _)) in raw.iter().enumerate() {
        let mut targets: Vec<Dep> = (0..r).map(Dep::Comp).collect();
        targets.extend(
            (0..GROUPS)
                .filter(|&g| reg.group_exists(g) && reg.members(g).iter().all(|&m| m < r))
                .map(Dep::Group),
        );
        if !targets.is_empty() {
            reg.comps[r].deps = picks
                .iter()
                .map(|&p| targets[usize::from(p) % targets.len()])
                .collect();
        }
    }
    reg
}

fn registry() -> impl Strategy<Value = Registry> {
    (1..=12usize)
        .prop_flat_map(|n| {
            (
                prop::collection::vec(group_kind(), GROUPS),
                prop::collection::vec(raw_comp(), n),
                Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                prop_oneof![
                    1 => Just(View::Live),
                    1 => Just(View::Ready),
                    3 => Just(View::All)
                ],
            )
        })
        .prop_map(|(groups, raw, order, view)| resolve(groups, raw, order, view))
}

// ---------------------------------------------------------------------------
// Reference model, from SPEC section 1
// ---------------------------------------------------------------------------

/// "Ordering, worst first: `fail` > `warn` > `unknown` > `pass`."
fn spec_rank(s: Status) -> u8 {
    match s {
        Status::Pass => 0,
        Status::Unknown => 1,
        Status::Warn => 2,
        Status::Fail => 3,
    }
}

/// The worst of some statuses, by going down the SPEC's order.
fn spec_worst(statuses: &[Status]) -> Option<Status> {
    [Status::Fail, Status::Warn, Status::Unknown, Status::Pass]
        .into_iter()
        .find(|s| statuses.contains(s))
}

/// Whether a view counts a check of this level (SPEC section 2: `/health/live`
/// counts `live` checks, `/health/ready` `live` and `ready`, `/health` all).
fn view_counts(view: View, level: Level) -> bool {
    match view {
        View::Live => matches!(level, Level::Live),
        View::Ready => matches!(level, Level::Live | Level::Ready),
        View::All => true,
    }
}

/// Rule 3 for members that all have a verdict: the clauses in SPEC order.
fn set_verdict(up: usize, counted: usize, n: usize) -> Status {
    if up == counted {
        Status::Pass
    } else if up >= n {
        Status::Warn
    } else {
        Status::Fail
    }
}

#[derive(Debug, PartialEq)]
struct Model {
    components: Vec<Option<Status>>,
    groups: Vec<Option<Status>>,
    system: Status,
    root_causes: BTreeSet<usize>,
    impacted_by: Vec<BTreeSet<usize>>,
}

fn model(reg: &Registry) -> Model {
    // Rule 1, plus grace and views.
    let components: Vec<Option<Status>> = reg
        .comps
        .iter()
        .map(|c| {
            let counted: Vec<Status> = c
                .checks
                .iter()
                .filter(|k| view_counts(reg.view, k.level))
                .filter_map(|k| {
                    let s = k.status?;
                    let s = if s == Status::Unknown && k.past_grace {
                        Status::Fail
                    } else {
                        s
                    };
                    Some(if k.impact == Impact::Warn && s == Status::Fail {
                        Status::Warn
                    } else {
                        s
                    })
                })
                .collect();
            spec_worst(&counted)
        })
        .collect();

    // Groups: a plain group is the worst of its members; rule 3 for sets.
    let groups: Vec<Option<Status>> = (0..GROUPS)
        .map(|g| {
            let members: Vec<Status> = reg
                .members(g)
                .into_iter()
                .filter_map(|m| components[m])
                .collect();
            let Some(n) = reg.groups[g].min_passing() else {
                return spec_worst(&members);
            };
            if members.is_empty() {
                return None;
            }
            let n = n as usize;
            let up = members
                .iter()
                .filter(|s| matches!(s, Status::Pass | Status::Warn))
                .count();
            let unknown = members.iter().filter(|&&s| s == Status::Unknown).count();
            // Every way the unknown members could turn out: `extra` of them up.
            let verdicts: Vec<Status> = (0..=unknown)
                .map(|extra| set_verdict(up + extra, members.len(), n))
                .collect();
            Some(if verdicts.iter().all(|&v| v == verdicts[0]) {
                verdicts[0]
            } else if verdicts.contains(&Status::Pass) {
                Status::Unknown
            } else {
                // Degraded whichever way they turn out (a member fails).
                Status::Warn
            })
        })
        .collect();

    // Rules 2 and 3: who speaks for the system, and how loudly.
    let mut voices: Vec<(Status, bool)> = Vec::new();
    for (r, c) in reg.comps.iter().enumerate() {
        let in_set = c
            .group
            .is_some_and(|g| reg.groups[g].min_passing().is_some());
        if let (false, Some(s)) = (in_set, components[r]) {
            voices.push((s, c.critical));
        }
    }
    for (kind, status) in reg.groups.iter().zip(&groups) {
        if let (GroupKind::Set { critical, .. }, Some(s)) = (*kind, *status) {
            voices.push((s, critical));
        }
    }
    let system = if voices.iter().any(|&(s, crit)| s == Status::Fail && crit) {
        Status::Fail
    } else if voices
        .iter()
        .any(|&(s, _)| matches!(s, Status::Fail | Status::Warn))
    {
        Status::Warn
    } else if voices.iter().any(|&(s, _)| s == Status::Unknown) {
        Status::Unknown
    } else {
        Status::Pass
    };

    // Rule 4: failing edges only.
    let fails = |r: usize| components[r] == Some(Status::Fail);
    let dep_fails = |d: &Dep| match *d {
        Dep::Comp(t) => fails(t),
        Dep::Group(g) => groups[g] == Some(Status::Fail),
    };
    // Adjacency list: a failing component -> the failing components it
    // depends on (a failing group dependency stands for its failing members).
    let adjacency: Vec<Vec<usize>> = (0..reg.comps.len())
        .map(|r| {
            if !fails(r) {
                return Vec::new();
            }
            let mut next = Vec::new();
            for d in reg.comps[r].deps.iter().filter(|d| dep_fails(d)) {
                match *d {
                    Dep::Comp(t) => next.push(t),
                    Dep::Group(g) => next.extend(reg.members(g).into_iter().filter(|&m| fails(m))),
                }
            }
            next
        })
        .collect();
    let is_root: Vec<bool> = (0..reg.comps.len())
        .map(|r| fails(r) && !reg.comps[r].deps.iter().any(dep_fails))
        .collect();
    let root_causes: BTreeSet<usize> = (0..reg.comps.len()).filter(|&r| is_root[r]).collect();
    let impacted_by = (0..reg.comps.len())
        .map(|r| {
            let mut found = BTreeSet::new();
            if !fails(r) || is_root[r] {
                return found;
            }
            let mut seen = vec![false; reg.comps.len()];
            let mut queue = VecDeque::from([r]);
            seen[r] = true;
            while let Some(x) = queue.pop_front() {
                if is_root[x] {
                    found.insert(x);
                }
                for &y in &adjacency[x] {
                    if !seen[y] {
                        seen[y] = true;
                        queue.push_back(y);
                    }
                }
            }
            found
        })
        .collect();

    Model {
        components,
        groups,
        system,
        root_causes,
        impacted_by,
    }
}

/// The implementation's verdict, translated to ranks and group numbers.
fn observed(reg: &Registry, topo: &Topology, agg: &Aggregate) -> Model {
    let rank_of: Vec<usize> = {
        let mut v = vec![0; reg.comps.len()];
        for r in 0..reg.comps.len() {
            v[topo.component(&comp_id(r)).expect("component exists")] = r;
        }
        v
    };
    let components = (0..reg.comps.len())
        .map(|r| agg.components[topo.component(&comp_id(r)).expect("component exists")])
        .collect();
    let groups = (0..GROUPS)
        .map(|g| topo.group(&group_id(g)).and_then(|i| agg.groups[i]))
        .collect();
    let impacted_by = (0..reg.comps.len())
        .map(|r| {
            agg.impacted_by[topo.component(&comp_id(r)).expect("component exists")]
                .iter()
                .map(|&i| rank_of[i])
                .collect()
        })
        .collect();
    Model {
        components,
        groups,
        system: agg.system,
        root_causes: agg.root_causes.iter().map(|&i| rank_of[i]).collect(),
        impacted_by,
    }
}

fn all_statuses() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Pass),
        Just(Status::Warn),
        Just(Status::Fail),
        Just(Status::Unknown)
    ]
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Components, groups, system, root causes and impacted_by equal the
    /// reference model's.
    #[test]
    fn model_equals_implementation(reg in registry()) {
        let (topo, agg) = reg.run();
        let expected = model(&reg);
        prop_assert_eq!(observed(&reg, &topo, &agg), expected);
        // Output order: root causes and impacted_by are sorted by index.
        prop_assert!(agg.root_causes.is_sorted());
        prop_assert!(agg.impacted_by.iter().all(|v| v.is_sorted()));
    }

    /// Rule 2: a failing critical component outside a redundancy set fails
    /// the system (so it is never `pass`).
    #[test]
    fn failing_critical_component_fails_the_system(reg in registry()) {
        let (topo, agg) = reg.run();
        for (r, c) in reg.comps.iter().enumerate() {
            let i = topo.component(&comp_id(r)).unwrap();
            let in_set = c.group.is_some_and(|g| reg.groups[g].min_passing().is_some());
            if c.critical && !in_set && agg.components[i] == Some(Status::Fail) {
                prop_assert_ne!(agg.system, Status::Pass);
                prop_assert_eq!(agg.system, Status::Fail);
            }
        }
    }

    /// Adding a passing, non-critical component without dependencies (alone
    /// or in one of the groups) never makes the system worse, and alone it
    /// changes nothing else.
    #[test]
    fn adding_a_passing_component_never_worsens_the_system(
        reg in registry(),
        group in 0..GROUPS + 1,
        level in prop_oneof![Just(Level::Live), Just(Level::Ready), Just(Level::Deep)],
    ) {
        let (_, before) = reg.run();
        let mut more = reg.clone();
        more.comps.push(CompDecl {
            critical: false,
            group: (group < GROUPS).then_some(group),
            deps: Vec::new(),
            checks: vec![CheckDecl {
                level,
                impact: Impact::Fail,
                status: Some(Status::Pass),
                past_grace: false,
            }],
        });
        more.order.push(reg.comps.len());
        let (_, after) = more.run();
        prop_assert!(
            spec_rank(after.system) <= spec_rank(before.system),
            "system went from {} to {}", before.system, after.system
        );
        if group == GROUPS {
            let n = reg.comps.len();
            prop_assert_eq!(&after.components[..n], &before.components[..]);
            prop_assert_eq!(&after.groups, &before.groups);
            prop_assert_eq!(&after.root_causes, &before.root_causes);
            prop_assert_eq!(&after.impacted_by[..n], &before.impacted_by[..]);
            prop_assert_eq!(after.system, before.system);
        }
    }

    /// Rule 4: root causes are exactly the failing components none of whose
    /// direct dependencies fails; every other failing component with a
    /// failing dependency names only root causes it is impacted by.
    #[test]
    fn root_causes_are_failing_components_without_failing_dependencies(reg in registry()) {
        let (topo, agg) = reg.run();
        let fails = |i: usize| agg.components[i] == Some(Status::Fail);
        let expected: Vec<usize> = (0..topo.components.len())
            .filter(|&i| {
                fails(i)
                    && !reg.comps[rank(&topo, i)].deps.iter().any(|d| match *d {
                        Dep::Comp(t) => fails(topo.component(&comp_id(t)).unwrap()),
                        Dep::Group(g) => {
                            agg.groups[topo.group(&group_id(g)).unwrap()] == Some(Status::Fail)
                        }
                    })
            })
            .collect();
        prop_assert_eq!(&agg.root_causes, &expected);
        for (i, by) in agg.impacted_by.iter().enumerate() {
            if !fails(i) || expected.contains(&i) {
                prop_assert!(by.is_empty(), "component {} impacted by {:?}", i, by);
            }
            prop_assert!(by.iter().all(|b| expected.contains(b)));
        }
    }

    /// Rule 3: a redundancy set never fails while at least N members are up,
    /// and is `pass` when every counted member passes or warns.
    #[test]
    fn redundancy_set_with_n_up_never_fails(reg in registry()) {
        let (topo, agg) = reg.run();
        for (g, kind) in reg.groups.iter().enumerate() {
            let (Some(n), Some(gi)) = (kind.min_passing(), topo.group(&group_id(g))) else {
                continue;
            };
            let members: Vec<Status> = topo.groups[gi]
                .members
                .iter()
                .filter_map(|&m| agg.components[m])
                .collect();
            let up = members.iter().filter(|s| s.is_up()).count();
            if up >= n as usize {
                prop_assert_ne!(agg.groups[gi], Some(Status::Fail));
            }
            if !members.is_empty() && up == members.len() {
                prop_assert_eq!(agg.groups[gi], Some(Status::Pass));
            }
        }
    }

    /// Rule 1: an `impact = "warn"` check never makes its component fail —
    /// a failing component has a counted `impact = "fail"` check that fails
    /// (or is unknown past its grace).
    #[test]
    fn impact_warn_checks_never_fail_a_component(reg in registry()) {
        let (topo, agg) = reg.run();
        for (r, c) in reg.comps.iter().enumerate() {
            let i = topo.component(&comp_id(r)).unwrap();
            if agg.components[i] != Some(Status::Fail) {
                continue;
            }
            let explained = c.checks.iter().any(|k| {
                k.impact == Impact::Fail
                    && view_counts(reg.view, k.level)
                    && (k.status == Some(Status::Fail)
                        || (k.status == Some(Status::Unknown) && k.past_grace))
            });
            prop_assert!(explained, "component {} fails through warn-impact checks only", r);
        }
    }

    /// The status ordering `fail` > `warn` > `unknown` > `pass`.
    #[test]
    fn status_ordering(
        a in all_statuses(),
        b in all_statuses(),
        c in all_statuses(),
        many in prop::collection::vec(all_statuses(), 0..8),
    ) {
        prop_assert_eq!(a.worst(b), b.worst(a));
        prop_assert_eq!(a.worst(b).worst(c), a.worst(b.worst(c)));
        prop_assert_eq!(a.worst(a), a);
        prop_assert_eq!(spec_rank(a.worst(b)), spec_rank(a).max(spec_rank(b)));
        prop_assert_eq!(a.severity() > b.severity(), spec_rank(a) > spec_rank(b));
        prop_assert_eq!(
            Status::worst_of(many.iter().copied()),
            many.iter().copied().max_by_key(|&s| spec_rank(s))
        );
    }
}

fn rank(topo: &Topology, i: usize) -> usize {
    topo.components[i]
        .info
        .id
        .strip_prefix('k')
        .and_then(|r| r.parse().ok())
        .expect("component ids are k<rank>")
}

#[test]
fn status_ordering_is_total_and_worst_first() {
    use Status::*;
    assert_eq!(Status::worst_of([]), None);
    let worst_first = [Fail, Warn, Unknown, Pass];
    for (i, &a) in worst_first.iter().enumerate() {
        for &b in &worst_first[i..] {
            assert_eq!(a.worst(b), a, "{a} is worse than {b}");
        }
    }
}

// ---------------------------------------------------------------------------
// Regression: an undersized redundancy set with an unknown member
// ---------------------------------------------------------------------------

/// A redundancy set `feeds` with
/// `min_passing = 2` and a single member:
///
/// * member `pass` → the set is `pass` (rule 3's first clause, "all members
///   up", taken before "fewer than N up");
/// * member `unknown` (within grace) → the set is `fail` — although the
///   member may turn out up, which by the previous line makes the set `pass`.
///   By the implementation's own documented choice ("members still
///   `unknown` leave a redundancy set `unknown` when they are what stands
///   between it and a verdict") it should be `unknown`.
///
/// A consequence: a failing component depending on `feeds` is then neither
/// a root cause (its dependency fails) nor impacted by any root cause (the
/// failing set has no failing member), so no alert would name a cause.
#[test]
fn undersized_redundancy_set_with_an_unknown_member_is_unknown() {
    let up = || check_fn(|_| async { Outcome::pass("") });
    let topo = Topology::build(
        &[Group::new("feeds").min_passing(2).critical(true)],
        &[
            Component::new("primary")
                .group("feeds")
                .check(CheckSpec::live("up", up())),
            Component::new("trader")
                .critical(true)
                .depends_on("feeds")
                .check(CheckSpec::live("up", up())),
        ],
    )
    .unwrap();
    let pass = aggregate(&topo, |k| Some([Status::Pass, Status::Fail][k]));
    assert_eq!(pass.groups[0], Some(Status::Pass));
    let unknown = aggregate(&topo, |k| Some([Status::Unknown, Status::Fail][k]));
    assert_eq!(
        (
            unknown.groups[0],
            unknown.root_causes.clone(),
            unknown.impacted_by[1].clone()
        ),
        (Some(Status::Unknown), vec![1], vec![]),
        "set unknown, so the trader is its own root cause"
    );
}
