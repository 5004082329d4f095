//! OpenCode: placeholder until the CLI findings land.
use fracta_config::AdapterKind;

use super::{Adapter, AdapterError, EventParser, LaunchContext, Outcome, Parsed};
use crate::launch::LaunchSpec;

pub struct OpenCode;

impl Adapter for OpenCode {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Opencode
    }
    fn binary(&self) -> &'static str {
        "opencode"
    }
    fn npm_package(&self) -> &'static str {
        "opencode-ai"
    }
    fn batch_launch(&self, _ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        Err(AdapterError::Other(
            "opencode adapter not implemented yet".into(),
        ))
    }
    fn parser(&self) -> Box<dyn EventParser> {
        Box::new(P(Outcome::default()))
    }
}

struct P(Outcome);
impl EventParser for P {
    fn parse_line(&mut self, _line: &str) -> Parsed {
        Parsed::unknown("opencode parser not implemented")
    }
    fn outcome(&self) -> &Outcome {
        &self.0
    }
}
