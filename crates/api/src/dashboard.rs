//! What the dashboard (`fracta serve` at `/`) reads: the forest's live agent entries, an
//! agent's branch diff, and the login exchange.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AgentView;

/// One agent as the forest shows it: its view plus what only the control plane knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ForestAgent {
    pub agent: AgentView,
    /// A live stream session between turns, waiting for `send`.
    pub waiting_for_input: bool,
    /// It has a live stream session here (so `send` works).
    pub has_session: bool,
    /// Why `steer` cannot be used on it (its runtime takes no input into a turn in flight),
    /// or `null` when its runtime can be steered.
    pub steer_unsupported: Option<String>,
}

/// An agent's branch against its base (`git diff BASE...BRANCH`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiffView {
    pub agent_id: String,
    pub base: String,
    pub branch: String,
    /// `git diff --stat`.
    pub stat: String,
    /// One patch per changed file, in git's order.
    pub files: Vec<FileDiff>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileDiff {
    /// The file's path on the branch (its old path when it was deleted).
    pub path: String,
    /// Lines added and removed.
    pub added: u64,
    pub removed: u64,
    /// The file's part of the patch, from its `diff --git` line on.
    pub patch: String,
}

/// A one-time login code for the dashboard (`POST /v1/dashboard/codes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoginCode {
    pub code: String,
    /// It expires this many seconds after it was made, and works once.
    pub expires_in_secs: u64,
}

/// The body of `POST /dashboard/session`: exchange a login code for a session cookie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub code: String,
}

/// A dashboard session: the CSRF token every state-changing call sends as `X-CSRF-Token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionView {
    pub csrf_token: String,
}

/// The body of `POST /v1/agents/{id}/merge`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// `merge` (default: a merge commit), `squash` or `rebase`.
    #[serde(default)]
    pub how: Option<String>,
    /// Remove the agent once its branch is merged (worktree, branch, runtime home, record).
    #[serde(default)]
    pub rm: Option<bool>,
}

/// A merged agent branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MergeView {
    pub agent_id: String,
    pub branch: String,
    /// The branch checked out in the project, which the work went into.
    pub into: String,
    /// Its new head commit.
    pub head: String,
    /// The agent was removed after the merge (`rm: true`).
    pub removed: bool,
}

/// The query of `DELETE /v1/agents/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemoveQuery {
    /// Remove it even though its branch has work that is not on its base.
    #[serde(default)]
    pub force: Option<bool>,
}
