//! The command verbs' arguments, as clap parses them.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

use crate::client::wait::WaitArgs;
use crate::client::ClientArgs;

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Validate a pipeline file and apply it.
    Apply(ApplyArgs),
    /// Record freight discovered in a warehouse (e.g. pushed by CI).
    Discover(DiscoverArgs),
    /// Record the outcome of a check for a freight in a stage.
    RecordVerification(VerificationArgs),
    /// Request a promotion of freight into a stage.
    Promote(PromoteArgs),
    /// Approve a promotion (by --stage and --freight: the one of that
    /// freight into that stage that has not ended).
    Approve(DecisionArgs),
    /// Reject a promotion (by --stage and --freight: as approve).
    Reject(DecisionArgs),
    /// Abort a promotion (by --stage and --freight: as approve).
    Abort(DecisionArgs),
    /// Emergency bypass: approve freight straight for a stage.
    ApproveFreight(BypassArgs),
    /// Promote the previous freight of a stage that is still available.
    Rollback(RollbackArgs),
    /// Report how a promotion your deployment tool ran went: started,
    /// succeeded or failed (for stages Waybill does not deploy). By --stage
    /// and --freight: the promotion of that freight into that stage that
    /// waits for its executor, or, for a retried job, the one whose outcome
    /// the stage took last.
    Report(ReportArgs),
}

impl ClientCommand {
    /// The verb's `--idempotency-key`.
    pub fn idempotency_key_mut(&mut self) -> &mut Option<String> {
        match self {
            ClientCommand::Apply(a) => &mut a.idempotency_key,
            ClientCommand::Discover(a) => &mut a.common.idempotency_key,
            ClientCommand::RecordVerification(a) => &mut a.common.idempotency_key,
            ClientCommand::Promote(a) => &mut a.common.idempotency_key,
            ClientCommand::Approve(a) | ClientCommand::Reject(a) | ClientCommand::Abort(a) => {
                &mut a.common.idempotency_key
            }
            ClientCommand::ApproveFreight(a) => &mut a.common.idempotency_key,
            ClientCommand::Rollback(a) => &mut a.common.idempotency_key,
            ClientCommand::Report(a) => &mut a.common.idempotency_key,
        }
    }

    /// The project the verb names (`apply` takes it from its file).
    pub fn project(&self) -> Option<&str> {
        match self {
            ClientCommand::Apply(_) => None,
            ClientCommand::Discover(a) => Some(&a.common.project),
            ClientCommand::RecordVerification(a) => Some(&a.common.project),
            ClientCommand::Promote(a) => Some(&a.common.project),
            ClientCommand::Approve(a) | ClientCommand::Reject(a) | ClientCommand::Abort(a) => {
                Some(&a.common.project)
            }
            ClientCommand::ApproveFreight(a) => Some(&a.common.project),
            ClientCommand::Rollback(a) => Some(&a.common.project),
            ClientCommand::Report(a) => Some(&a.common.project),
        }
    }

    /// How to reach the server and who is asking.
    pub fn client(&self) -> &ClientArgs {
        match self {
            ClientCommand::Apply(a) => &a.client,
            ClientCommand::Discover(a) => &a.client,
            ClientCommand::RecordVerification(a) => &a.client,
            ClientCommand::Promote(a) => &a.client,
            ClientCommand::Approve(a) | ClientCommand::Reject(a) | ClientCommand::Abort(a) => {
                &a.client
            }
            ClientCommand::ApproveFreight(a) => &a.client,
            ClientCommand::Rollback(a) => &a.client,
            ClientCommand::Report(a) => &a.client,
        }
    }
}

#[derive(Debug, Args)]
pub struct Common {
    /// Project.
    #[arg(long, short = 'p', env = "WAYBILL_PROJECT")]
    pub project: String,
    /// Idempotency key: a retry with the same key returns the original outcome.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The pipeline file (YAML).
    #[arg(long, short = 'f')]
    pub file: PathBuf,
    /// Source revision recorded with the pipeline [default: when the file
    /// is in a git work tree, the commit of HEAD, with `-dirty` if the file
    /// differs from it; `--revision ''` records none].
    #[arg(long)]
    pub revision: Option<String>,
    /// Decide, append nothing: say whether the server would accept the
    /// pipeline now and what it changes against the one in force (exit 0),
    /// or why not (exit 1).
    #[arg(long)]
    pub dry_run: bool,
    /// Idempotency key: a retry with the same key returns the original outcome.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub common: Common,
    /// The warehouse of the pipeline the freight comes from.
    #[arg(long, short = 'w')]
    pub warehouse: String,
    /// Image `repo:tag[@sha256:digest]` (repeatable).
    #[arg(long)]
    pub image: Vec<String>,
    /// Git `url@commit`, with the full commit id (repeatable).
    #[arg(long)]
    pub git: Vec<String>,
    /// Helm chart `name:version` (repeatable).
    #[arg(long)]
    pub chart: Vec<String>,
    /// A name for the freight, usable wherever its id is (e.g. a release name).
    #[arg(long, default_value = "", hide_default_value = true)]
    pub alias: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("outcome").required(true).args(["pass", "fail"])))]
pub struct VerificationArgs {
    #[command(flatten)]
    pub common: Common,
    /// Freight: its id, alias, or the start of its id (6+ hex digits).
    #[arg(long)]
    pub freight: String,
    /// The stage the check ran in.
    #[arg(long, short = 's')]
    pub stage: String,
    /// The check, as the stage's `verification` names it.
    #[arg(long)]
    pub check: String,
    /// The check passed.
    #[arg(long)]
    pub pass: bool,
    /// The check failed.
    #[arg(long)]
    pub fail: bool,
    /// A metric `name=value` (repeatable).
    #[arg(long)]
    pub metric: Vec<String>,
    /// Where the evidence is (e.g. the CI run's URL).
    #[arg(long, default_value = "", hide_default_value = true)]
    pub evidence: String,
    /// What the check found, in a sentence.
    #[arg(long, default_value = "", hide_default_value = true)]
    pub details: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which_freight").required(true).args(["freight", "newest"])))]
pub struct PromoteArgs {
    #[command(flatten)]
    pub common: Common,
    /// The stage to promote into.
    #[arg(long, short = 's')]
    pub stage: String,
    /// Freight: its id, alias, or the start of its id (6+ hex digits).
    #[arg(long)]
    pub freight: Option<String>,
    /// The newest freight available to the stage.
    #[arg(long)]
    pub newest: bool,
    /// With --newest: the newest of this warehouse's freight (a stage that
    /// takes freight from several runs one of each).
    #[arg(long, short = 'w', conflicts_with = "freight")]
    pub warehouse: Option<String>,
    #[command(flatten)]
    pub request: RequestArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `promote` and `rollback` request with their promotion: a ticket, a
/// reason, and whether to only decide it or to follow it to its end.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Change ticket (a stage's policy may require one, e.g. CHG-123).
    #[arg(long, default_value = "", hide_default_value = true)]
    pub ticket: String,
    /// Why, for the record.
    #[arg(long, short = 'm', default_value = "", hide_default_value = true)]
    pub reason: String,
    /// Decide, append nothing: say whether the request would be accepted
    /// now (exit 0) or why not (exit 1).
    #[arg(long, conflicts_with = "wait")]
    pub dry_run: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// The promotion a decision or a report is about: its id, or the stage and
/// the freight (the verb's help says which promotion that names).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which_promotion").required(true).args(["promotion", "stage"])))]
pub struct PromotionRef {
    /// Promotion id [or name it by --stage and --freight].
    #[arg(long)]
    pub promotion: Option<String>,
    /// The stage the promotion is into (with --freight, instead of
    /// --promotion).
    #[arg(long, short = 's', requires = "freight")]
    pub stage: Option<String>,
    /// The freight it promotes: its id, alias, or the start of its id (with
    /// --stage, instead of --promotion).
    #[arg(long, conflicts_with = "promotion", requires = "stage")]
    pub freight: Option<String>,
}

#[derive(Debug, Args)]
pub struct DecisionArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub named: PromotionRef,
    /// Comment (approve) or reason (reject, abort), for the record.
    #[arg(
        long,
        short = 'm',
        visible_alias = "reason",
        default_value = "",
        hide_default_value = true
    )]
    pub comment: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct BypassArgs {
    #[command(flatten)]
    pub common: Common,
    /// Freight: its id, alias, or the start of its id (6+ hex digits).
    #[arg(long)]
    pub freight: String,
    /// The stage the freight is approved for.
    #[arg(long, short = 's')]
    pub stage: String,
    /// Why (mandatory).
    #[arg(long, short = 'm')]
    pub reason: String,
    /// Change ticket (e.g. the incident).
    #[arg(long, default_value = "", hide_default_value = true)]
    pub ticket: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub common: Common,
    /// The stage to roll back.
    #[arg(long, short = 's')]
    pub stage: String,
    /// The warehouse whose freight to roll back, when the stage runs freight
    /// of several (it runs one of each).
    #[arg(long, short = 'w', default_value = "", hide_default_value = true)]
    pub warehouse: String,
    #[command(flatten)]
    pub request: RequestArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("result").required(true).args(["started", "succeeded", "failed"])))]
pub struct ReportArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub named: PromotionRef,
    /// The deployment started (the promotion is running).
    #[arg(long)]
    pub started: bool,
    /// The deployment succeeded: the stage now runs the freight.
    #[arg(long)]
    pub succeeded: bool,
    /// The deployment failed (auto-promotion does not retry it).
    #[arg(long)]
    pub failed: bool,
    /// What happened, in a sentence or a URL (e.g. the deployment's log).
    #[arg(long, short = 'm', default_value = "", hide_default_value = true)]
    pub details: String,
    #[command(flatten)]
    pub client: ClientArgs,
}
