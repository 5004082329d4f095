//! Step monitoring (the seed's OpenCode safety, for any adapter that counts steps): count the
//! steps a run (a turn, in a session) starts; warn at every fifth up to 20; past the
//! runtime's `max_steps`, say why to abort.

use crate::event::{Event, StepPhase};

pub struct StepMonitor {
    /// The CLI's name, for messages.
    cli: &'static str,
    limit: u32,
    steps: u32,
}

impl StepMonitor {
    pub fn new(cli: &'static str, limit: u32) -> Self {
        StepMonitor {
            cli,
            limit,
            steps: 0,
        }
    }

    pub fn new_turn(&mut self) {
        self.steps = 0;
    }

    /// Count the steps `events` start; once the count passes the limit, the reason to abort.
    pub fn observe(&mut self, agent_id: &str, events: &[Event]) -> Option<String> {
        let started = events
            .iter()
            .filter(|e| matches!(e, Event::Step(s) if s.phase == StepPhase::Started))
            .count();
        let (cli, limit) = (self.cli, self.limit);
        let mut why = None;
        for _ in 0..started {
            self.steps += 1;
            let steps = self.steps;
            if steps.is_multiple_of(5) && steps <= 20 {
                tracing::warn!(agent = %agent_id, "{cli} has taken {steps} steps (max_steps {limit})");
            }
            if steps == limit + 1 {
                let w = format!("{cli} took more than {limit} steps (max_steps): aborted");
                tracing::warn!(agent = %agent_id, "{w}");
                why = Some(w);
            }
        }
        why
    }
}
