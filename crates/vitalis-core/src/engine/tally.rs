//! Incremental aggregation of one view: as a check's counted status changes,
//! only its component, that component's group and the system are
//! recomputed — through the same functions of [`crate::aggregate`] that the
//! full pass uses — so one result costs O(size of its component), and every
//! transition is seen (none is coalesced away).

use crate::aggregate::{
    Aggregate, View, aggregate, component_status, contribution, group_status, root_causes,
};
use crate::model::Status;
use crate::topology::Topology;

/// A transition found while folding a change in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Moved {
    Component(usize, Option<Status>, Option<Status>),
    Group(usize, Option<Status>, Option<Status>),
    System(Status, Status),
}

/// The incremental state of one view.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    pub(crate) view: View,
    pub(crate) components: Vec<Option<Status>>,
    pub(crate) groups: Vec<Option<Status>>,
    pub(crate) system: Status,
    /// How many system contributors contribute each status, by severity.
    contributions: [u32; 4],
}

impl Tally {
    /// A tally computed in full from `counted(check)`.
    pub(crate) fn full(
        view: View,
        topo: &Topology,
        counted: impl Fn(usize) -> Option<Status>,
    ) -> Self {
        let agg = aggregate(topo, counted);
        let mut contributions = [0u32; 4];
        for (node, s) in topo.components.iter().zip(&agg.components) {
            if !node
                .group
                .is_some_and(|g| topo.groups[g].is_redundancy_set())
                && let Some(s) = s
            {
                contributions[contribution(*s, node.info.critical).severity() as usize] += 1;
            }
        }
        for (g, s) in topo.groups.iter().zip(&agg.groups) {
            if g.is_redundancy_set()
                && let Some(s) = s
            {
                contributions[contribution(*s, g.critical).severity() as usize] += 1;
            }
        }
        Tally {
            view,
            components: agg.components,
            groups: agg.groups,
            system: agg.system,
            contributions,
        }
    }

    /// Folds in a change of component `ci`'s checks; `counted(check)` gives
    /// each check's status in this view. Pushes every transition to `moved`.
    pub(crate) fn component_changed(
        &mut self,
        topo: &Topology,
        ci: usize,
        counted: impl Fn(usize) -> Option<Status>,
        moved: &mut Vec<Moved>,
    ) {
        let node = &topo.components[ci];
        let status = component_status(
            node.checks
                .clone()
                .filter_map(|k| Some((counted(k)?, topo.checks[k].impact))),
        );
        let old = self.components[ci];
        if status == old {
            return;
        }
        self.components[ci] = status;
        moved.push(Moved::Component(ci, old, status));
        match node.group {
            Some(g) if topo.groups[g].is_redundancy_set() => self.group_changed(topo, g, moved),
            group => {
                self.shift(old, status, node.info.critical);
                if let Some(g) = group {
                    self.group_changed(topo, g, moved);
                }
                self.settle_system(moved);
            }
        }
    }

    fn group_changed(&mut self, topo: &Topology, g: usize, moved: &mut Vec<Moved>) {
        let group = &topo.groups[g];
        let status = group_status(
            group.min_passing,
            group.members.iter().map(|&m| self.components[m]),
        );
        let old = self.groups[g];
        if status == old {
            return;
        }
        self.groups[g] = status;
        moved.push(Moved::Group(g, old, status));
        if group.is_redundancy_set() {
            self.shift(old, status, group.critical);
            self.settle_system(moved);
        }
    }

    fn shift(&mut self, from: Option<Status>, to: Option<Status>, critical: bool) {
        if let Some(f) = from {
            self.contributions[contribution(f, critical).severity() as usize] -= 1;
        }
        if let Some(t) = to {
            self.contributions[contribution(t, critical).severity() as usize] += 1;
        }
    }

    fn settle_system(&mut self, moved: &mut Vec<Moved>) {
        let status = [Status::Fail, Status::Warn, Status::Unknown]
            .into_iter()
            .find(|s| self.contributions[s.severity() as usize] > 0)
            .unwrap_or(Status::Pass);
        if status != self.system {
            moved.push(Moved::System(self.system, status));
            self.system = status;
        }
    }

    /// The published verdict: the incremental statuses plus root causes
    /// (computed here, once per publish).
    pub(crate) fn verdict(&self, topo: &Topology) -> Aggregate {
        let (roots, impacted_by) = root_causes(topo, &self.components, &self.groups);
        Aggregate {
            components: self.components.clone(),
            groups: self.groups.clone(),
            system: self.system,
            root_causes: roots,
            impacted_by,
        }
    }
}
