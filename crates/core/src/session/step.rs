//! Step monitoring (the seed's OpenCode safety, for any adapter that counts steps): count the
//! steps a run (a turn, in a session) starts; warn at every fifth up to 20; past the
//! runtime's `max_steps`, say why to abort.

use crate::event::{Event, StepPhase};

pub struct StepMonitor {
    /// The CLI's name, for messages.
    cli: &'static str,
    limit: u32,
    steps: u32,
    /// The last error the runtime reported in this run: when the limit ends it, that is
    /// usually the real cause (a model that keeps failing makes the CLI retry, step by step).
    last_error: Option<String>,
    /// A step has started and not finished.
    open: bool,
    /// Steps started while the previous one had not finished: the CLI retrying a step whose
    /// model answer broke off.
    restarts: u32,
}

impl StepMonitor {
    pub fn new(cli: &'static str, limit: u32) -> Self {
        StepMonitor {
            cli,
            limit,
            steps: 0,
            last_error: None,
            open: false,
            restarts: 0,
        }
    }

    pub fn new_turn(&mut self) {
        self.steps = 0;
        self.last_error = None;
        self.open = false;
        self.restarts = 0;
    }

    /// Count the steps `events` start; once the count passes the limit, the reason to abort.
    pub fn observe(&mut self, agent_id: &str, events: &[Event]) -> Option<String> {
        let mut started = 0;
        for e in events {
            match e {
                Event::Step(s) if s.phase == StepPhase::Started => {
                    started += 1;
                    if self.open {
                        self.restarts += 1;
                    }
                    self.open = true;
                }
                Event::Step(_) => self.open = false,
                _ => {}
            }
        }
        if let Some(message) = events.iter().rev().find_map(|e| match e {
            Event::Error(e) => Some(e.message.clone()),
            _ => None,
        }) {
            self.last_error = Some(message.chars().take(300).collect());
        }
        let (cli, limit) = (self.cli, self.limit);
        let mut why = None;
        for _ in 0..started {
            self.steps += 1;
            let steps = self.steps;
            if steps.is_multiple_of(5) && steps <= 20 {
                tracing::warn!(agent = %agent_id, "{cli} has taken {steps} steps (max_steps {limit})");
            }
            if steps == limit + 1 {
                let mut w = format!("{cli} took more than {limit} steps (max_steps): aborted");
                if self.restarts > 0 {
                    w.push_str(&format!(
                        "; {} of them restarted a step that never finished (the model's answer broke off and {cli} retried)",
                        self.restarts
                    ));
                }
                if let Some(e) = &self.last_error {
                    w.push_str(&format!("; the last error it reported: {e}"));
                }
                tracing::warn!(agent = %agent_id, "{w}");
                why = Some(w);
            }
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ErrorEvent, StepEvent};

    fn step() -> Event {
        Event::Step(StepEvent {
            phase: StepPhase::Started,
        })
    }

    /// A run that keeps failing and retrying step by step names the failure, not only the
    /// step limit it ran into.
    #[test]
    fn the_limit_names_the_last_error_the_runtime_reported() {
        let mut m = StepMonitor::new("opencode", 2);
        assert_eq!(m.observe("a", &[step()]), None);
        let error = Event::Error(ErrorEvent {
            message: "stream disconnected before completion".into(),
        });
        assert_eq!(m.observe("a", &[error, step()]), None);
        let why = m.observe("a", &[step()]).unwrap();
        assert!(why.contains("more than 2 steps"), "{why}");
        assert!(
            why.contains("stream disconnected before completion"),
            "{why}"
        );
        // A new turn starts clean.
        m.new_turn();
        let why = (0..3).find_map(|_| m.observe("a", &[step()])).unwrap();
        assert!(!why.contains("last error"), "{why}");
    }

    /// Steps that start while the previous one never finished are a model answer breaking
    /// off, retried: the limit says so. Steps that finish are plain steps.
    #[test]
    fn restarted_steps_are_named_as_broken_answers() {
        let finish = Event::Step(StepEvent {
            phase: StepPhase::Finished,
        });
        let mut m = StepMonitor::new("opencode", 2);
        assert_eq!(m.observe("a", &[step(), finish.clone()]), None);
        assert_eq!(m.observe("a", &[step(), finish.clone()]), None);
        let why = m.observe("a", &[step(), finish]).unwrap();
        assert!(!why.contains("broke off"), "{why}");
        m.new_turn();
        let why = (0..3).find_map(|_| m.observe("a", &[step()])).unwrap();
        assert!(why.contains("2 of them restarted a step"), "{why}");
        assert!(why.contains("broke off"), "{why}");
    }
}
