//! Improvement rules, pure: no IO, no wire format, no database. Texts into terms (`text.rs`), the latent semantic
//! space (`lsa.rs`), theme discovery (`discovery.rs`), theme figures (`analytics.rs`), an improvement's lifecycle and
//! priority (this file and `priority.rs`), pilots against a holdout (`pilot.rs`), and the before/after of a shipped
//! improvement (`impact.rs`).
pub mod analytics;
pub mod discovery;
pub mod impact;
pub mod lsa;
pub mod pilot;
pub mod priority;
pub mod text;

use std::collections::HashMap;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// The theme of a text feedback could not place.
pub const UNCLASSIFIED: &str = "unclassified";

/// The weight of a signal's severity in an improvement's impact (RICE's scale: 0.5 low … 3 massive).
pub fn severity_weight(severity: &str) -> f64 {
    match severity {
        "critical" => 3.0,
        "high" => 2.0,
        "low" => 0.5,
        _ => 1.0,
    }
}

/// Where an improvement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// In the backlog.
    Proposed,
    /// Decided.
    Planned,
    /// Tried on a segment.
    Piloting,
    /// Rolled out.
    Shipped,
    /// Not done.
    Declined,
    /// Another covers it.
    Duplicate,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 6] =
        [Self::Proposed, Self::Planned, Self::Piloting, Self::Shipped, Self::Declined, Self::Duplicate];

    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Planned => "planned",
            Self::Piloting => "piloting",
            Self::Shipped => "shipped",
            Self::Declined => "declined",
            Self::Duplicate => "duplicate",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether nothing more happens to it.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Shipped | Self::Declined | Self::Duplicate)
    }

    /// Whether the lifecycle allows moving to `to`: forward along proposed → planned → piloting → shipped (a step
    /// may be skipped), back from piloting to planned (a pilot that disappointed), and to declined or duplicate from
    /// any open state. Nothing leaves a closed state.
    pub fn can_move_to(self, to: Status) -> bool {
        use Status::*;
        if self.is_closed() || self == to {
            return false;
        }
        match to {
            Proposed => false,
            Planned => matches!(self, Proposed | Piloting),
            Piloting => matches!(self, Proposed | Planned),
            Shipped => matches!(self, Proposed | Planned | Piloting),
            Declined | Duplicate => true,
        }
    }
}

/// How themes were settled: a discovered theme accepted into the taxonomy or merged into another theme. Resolves a
/// theme to the one its signals count under.
#[derive(Debug, Clone, Default)]
pub struct Settlements {
    /// Discovered theme → the theme it now counts as.
    pub into: HashMap<String, String>,
}

impl Settlements {
    /// The theme `theme` counts under (following acceptances and merges, at most 16 steps: a cycle stops there).
    pub fn resolve<'a>(&'a self, theme: &'a str) -> &'a str {
        let mut t = theme;
        for _ in 0..16 {
            match self.into.get(t) {
                Some(next) if next != t => t = next,
                _ => break,
            }
        }
        t
    }

    /// The theme a signal counts under: a complaint counts under feedback's theme when it had one, else its
    /// discovered theme; a low score's comment (`from_comment`) under its discovered theme once discovery placed it
    /// (comments are clustered whatever feedback made of them), else feedback's; unclassified when neither.
    pub fn effective<'a>(&'a self, theme: &'a str, discovered: Option<&'a str>, from_comment: bool) -> &'a str {
        match discovered {
            Some(d) if theme == UNCLASSIFIED || from_comment => self.resolve(d),
            _ if theme != UNCLASSIFIED => self.resolve(theme),
            _ => UNCLASSIFIED,
        }
    }

    /// Every theme that counts as `theme` (itself included).
    pub fn members_of(&self, theme: &str) -> Vec<String> {
        let mut out: Vec<String> = self.into.keys().filter(|k| self.resolve(k) == theme).cloned().collect();
        out.push(theme.to_string());
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_moves_forward_and_closes() {
        use Status::*;
        assert!(Proposed.can_move_to(Planned) && Planned.can_move_to(Piloting) && Piloting.can_move_to(Shipped));
        assert!(Proposed.can_move_to(Shipped), "a step may be skipped");
        assert!(Piloting.can_move_to(Planned), "back from a pilot that disappointed");
        assert!(!Planned.can_move_to(Proposed));
        assert!(Planned.can_move_to(Declined) && Piloting.can_move_to(Duplicate));
        for closed in [Shipped, Declined, Duplicate] {
            assert!(Status::ALL.iter().all(|to| !closed.can_move_to(*to)), "{closed:?}");
        }
        assert!(!Planned.can_move_to(Planned));
        assert_eq!(Status::parse("piloting"), Some(Piloting));
        assert_eq!(Status::parse("nope"), None);
    }

    #[test]
    fn settlements_resolve_chains() {
        let mut s = Settlements::default();
        s.into.insert("d-a".into(), "d-b".into());
        s.into.insert("d-b".into(), "delivery".into());
        s.into.insert("d-c".into(), "d-c".into());
        assert_eq!(s.resolve("d-a"), "delivery");
        assert_eq!(s.effective("billing", Some("d-a"), false), "billing");
        assert_eq!(s.effective("billing", Some("d-a"), true), "delivery", "a comment goes where discovery put it");
        assert_eq!(s.effective("billing", None, true), "billing");
        assert_eq!(s.effective(UNCLASSIFIED, Some("d-a"), false), "delivery");
        assert_eq!(s.effective(UNCLASSIFIED, None, false), UNCLASSIFIED);
        assert_eq!(s.resolve("d-c"), "d-c");
        assert_eq!(s.members_of("delivery"), vec!["d-a", "d-b", "delivery"]);
        assert_eq!(severity_weight("critical"), 3.0);
        assert_eq!(severity_weight("whatever"), 1.0);
    }
}
