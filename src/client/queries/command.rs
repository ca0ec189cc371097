//! The read verbs' arguments and their dispatch.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::at::AtPoint;
use super::format::{position_arg, time_arg};
use super::rpc::{connect, refused};
use super::{freight, history, projects, promotions, stages, watch};
use crate::client::ClientArgs;

/// The read verbs: they ask the projections and change nothing.
#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Every project you may view: its stages, events and last event.
    Projects(ProjectsArgs),
    /// Every stage of a project: current freight, verification, queue, hold.
    Status(StatusArgs),
    /// What happened, oldest first, filtered (without -p, when you may view
    /// several projects: in all of them).
    History(HistoryArgs),
    /// One freight in detail, or the freight of a project.
    Freight(FreightArgs),
    /// The promotions of a project, or one promotion in detail.
    Promotions(PromotionsArgs),
    /// Promotions waiting for your approval.
    Pending(PendingArgs),
    /// Print changes as they happen, until Ctrl-C.
    Watch(WatchArgs),
    /// The pipeline as it was at a position or a time.
    At(AtArgs),
    /// The pipeline definition in force (or an earlier policy version), as a
    /// file `waybill apply -f` takes.
    Pipeline(PipelineArgs),
}

impl QueryCommand {
    /// How to reach the server and who is asking.
    pub fn client(&self) -> &ClientArgs {
        match self {
            QueryCommand::Projects(a) => &a.client,
            QueryCommand::Status(a) => &a.client,
            QueryCommand::History(a) => &a.client,
            QueryCommand::Freight(a) => &a.client,
            QueryCommand::Promotions(a) => &a.client,
            QueryCommand::Pending(a) => &a.client,
            QueryCommand::Watch(a) => &a.client,
            QueryCommand::At(a) => &a.client,
            QueryCommand::Pipeline(a) => &a.client,
        }
    }
}

/// Project and read-your-own-writes position, common to the read verbs.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Project [default: the only project you may view, if there is one].
    #[arg(
        long,
        short = 'p',
        env = "WAYBILL_PROJECT",
        default_value = "",
        hide_default_value = true
    )]
    pub project: String,
    /// Wait (bounded) until the server reflects this position: read your own writes.
    #[arg(long, value_name = "POSITION", default_value_t = 0, value_parser = position_arg)]
    pub min_position: u64,
}

#[derive(Debug, Args)]
pub struct ProjectsArgs {
    /// Wait (bounded) until the server reflects this position.
    #[arg(long, value_name = "POSITION", default_value_t = 0, value_parser = position_arg)]
    pub min_position: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// An earlier policy version (as promotions and history name it: the
    /// position of its PipelineConfigured) instead of the one in force.
    #[arg(long, value_name = "POLICY_VERSION", conflicts_with = "diff")]
    pub version: Option<u64>,
    /// What this pipeline file changes against the one in force, a line
    /// per field (a viewer may ask; `apply --dry-run` also asks the server
    /// whether it would accept it). The project is the file's unless -p
    /// names it.
    #[arg(long, value_name = "FILE")]
    pub diff: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct PendingArgs {
    /// Only this project (default: every project).
    #[arg(long, short = 'p', env = "WAYBILL_PROJECT")]
    pub project: Option<String>,
    /// Wait (bounded) until the server reflects this position.
    #[arg(long, value_name = "POSITION", default_value_t = 0, value_parser = position_arg)]
    pub min_position: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Show this stage in detail (checks, queue, upstreams).
    pub stage: Option<String>,
    /// The same as STAGE, as the other commands take it.
    #[arg(
        long = "stage",
        short = 's',
        id = "stage_flag",
        value_name = "STAGE",
        conflicts_with = "stage"
    )]
    pub stage_flag: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl StatusArgs {
    /// The stage asked for, as the argument or the flag.
    pub fn stage(&self) -> Option<&str> {
        self.stage.as_deref().or(self.stage_flag.as_deref())
    }
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Only events about this stage.
    #[arg(long, short = 's')]
    pub stage: Option<String>,
    /// Only events about this freight (id or alias).
    #[arg(long)]
    pub freight: Option<String>,
    /// Only events by this principal (e.g. alice, svc:auto-promoter).
    #[arg(long)]
    pub actor: Option<String>,
    /// Event type: PromotionRequested (or promotion-requested), FreightDiscovered, ...
    #[arg(long = "type", value_name = "EVENT_TYPE")]
    pub event_type: Option<String>,
    /// Only the events of this promotion: its request, approvals, start and end.
    #[arg(long)]
    pub promotion: Option<String>,
    /// From this time on (inclusive): RFC 3339, a date and time in UTC
    /// (2024-05-01 12:00), or a time ago (2h, "1d 6h ago").
    #[arg(long, value_parser = time_arg)]
    pub since: Option<String>,
    /// Before this time (exclusive): as --since.
    #[arg(long, value_parser = time_arg)]
    pub until: Option<String>,
    /// From this position on.
    #[arg(long, value_name = "POSITION", default_value_t = 0, value_parser = position_arg)]
    pub from: u64,
    /// At most this many entries (0: the server's maximum).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// The N most recent entries instead (those the filters pass; with
    /// --from, at or before that position), printed oldest first.
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "limit",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub last: Option<u32>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct FreightArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Only freight from this warehouse.
    #[arg(long, short = 'w')]
    pub warehouse: Option<String>,
    /// Say for each freight whether it is available to this stage, and if not why.
    #[arg(long, value_name = "STAGE")]
    pub available_for: Option<String>,
    /// Newest first, a page at a time.
    #[command(flatten)]
    pub page: PageArgs,
    /// Show this freight (id or alias) in detail.
    #[arg(
        value_name = "ID_OR_ALIAS",
        conflicts_with_all = ["warehouse", "available_for", "page_size", "page_token", "all"]
    )]
    pub freight: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Paging of a list.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Items per page (0: the server's default, 100).
    #[arg(long, default_value_t = 0)]
    pub page_size: u32,
    /// Continue from a previous page.
    #[arg(long, conflicts_with = "all")]
    pub page_token: Option<String>,
    /// Every page.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct PromotionsArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Only promotions into this stage.
    #[arg(long, short = 's')]
    pub stage: Option<String>,
    /// Requested, Authorized, Running, Succeeded, Failed, Aborted or Rejected.
    #[arg(long, value_parser = promotions::status_arg)]
    pub status: Option<String>,
    /// Only promotions of this freight (id, alias or start of its id).
    #[arg(long)]
    pub freight: Option<String>,
    /// Newest first, a page at a time.
    #[command(flatten)]
    pub page: PageArgs,
    /// Oldest first: in order of request, as the history reads.
    #[arg(long)]
    pub oldest_first: bool,
    /// Show this promotion in detail, with each approval.
    #[arg(
        value_name = "ID",
        conflicts_with_all = ["stage", "status", "freight", "page_size", "page_token", "all", "oldest_first"]
    )]
    pub promotion: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Project (empty: every project).
    #[arg(
        long,
        short = 'p',
        env = "WAYBILL_PROJECT",
        default_value = "",
        hide_default_value = true
    )]
    pub project: String,
    /// From this position on; 1 for the whole history [default: what
    /// happens from now on].
    #[arg(long, value_name = "POSITION", value_parser = position_arg)]
    pub from: Option<u64>,
    /// Only events about this stage (with --project).
    #[arg(long, short = 's')]
    pub stage: Option<String>,
    /// Only events of this type: PromotionApproved (or promotion-approved),
    /// PromotionSucceeded, ...
    #[arg(long = "type", value_name = "EVENT_TYPE")]
    pub event_type: Option<String>,
    /// Only events that leave their promotion in this status, e.g.
    /// `authorized`: the promotions an executor is to deploy, as each
    /// becomes its work (at an auto stage's request, or at the approval
    /// that completes the count).
    #[arg(long, value_name = "STATUS", value_parser = promotions::status_arg)]
    pub status: Option<String>,
    /// Wait (bounded) until the server reflects this position before watching.
    #[arg(long, value_name = "POSITION", default_value_t = 0, value_parser = position_arg)]
    pub min_position: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct AtArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// A position, or a time: RFC 3339, a date and time in UTC
    /// (2024-05-01 03:12), or a time ago (2h, "1d 6h ago").
    #[arg(value_name = "POSITION|TIME", value_parser = AtPoint::parse)]
    pub at: AtPoint,
    /// Only this stage, in detail, with the promotion that put its freight
    /// there: who requested and approved it, when and why.
    #[arg(long, short = 's')]
    pub stage: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl QueryCommand {
    /// The project and position arguments of a verb about one project.
    fn read_args(&self) -> Option<&ReadArgs> {
        match self {
            QueryCommand::Status(a) => Some(&a.read),
            QueryCommand::History(a) => Some(&a.read),
            QueryCommand::Freight(a) => Some(&a.read),
            QueryCommand::Promotions(a) => Some(&a.read),
            QueryCommand::At(a) => Some(&a.read),
            QueryCommand::Pipeline(a) => Some(&a.read),
            QueryCommand::Projects(_) | QueryCommand::Pending(_) | QueryCommand::Watch(_) => None,
        }
    }

    /// Whether the verb can answer for every project at once: `history`
    /// without a filter that names something of one project.
    fn spans_projects(&self) -> bool {
        matches!(self, QueryCommand::History(a)
            if a.stage.is_none() && a.freight.is_none() && a.promotion.is_none())
    }

    fn set_project(&mut self, project: String) {
        let read = match self {
            QueryCommand::Status(a) => &mut a.read,
            QueryCommand::History(a) => &mut a.read,
            QueryCommand::Freight(a) => &mut a.read,
            QueryCommand::Promotions(a) => &mut a.read,
            QueryCommand::At(a) => &mut a.read,
            QueryCommand::Pipeline(a) => &mut a.read,
            QueryCommand::Projects(_) | QueryCommand::Pending(_) | QueryCommand::Watch(_) => return,
        };
        read.project = project;
    }
}

/// The project a verb means when none is given: the only one the caller
/// may view. `Err(Ok(text))`: there is none, or there are several;
/// `Err(Err(status))`: the server refused.
async fn sole_project(
    svc: &mut super::rpc::Queries,
    min_position: u64,
) -> Result<String, Result<String, tonic::Status>> {
    let reply = svc
        .list_projects(waybill_proto::v1::ListProjectsRequest { min_position })
        .await
        .map_err(Err)?
        .into_inner();
    let mut names: Vec<String> = reply.projects.into_iter().map(|p| p.project).collect();
    match names.len() {
        1 => Ok(names.remove(0)),
        0 => Err(Ok(
            "no project to show: none is applied yet, or you may view none (give one with -p)"
                .to_string(),
        )),
        _ => Err(Ok(format!(
            "give a project with -p (or WAYBILL_PROJECT): you may view {}",
            names.join(", ")
        ))),
    }
}

/// Runs one read verb. Exit codes: 0 done, 1 refused by the server, 2 the
/// server cannot be reached (connection errors come back as `Err`).
pub async fn run(client: &ClientArgs, command: QueryCommand) -> anyhow::Result<ExitCode> {
    if let QueryCommand::Watch(a) = &command {
        if a.min_position > 0 && a.project.is_empty() {
            anyhow::bail!("watch --min-position needs a project (-p)");
        }
    }
    let mut svc = connect(client).await?;
    let output = client.output;
    let mut command = command;
    // `pipeline --diff FILE`: the file names its project.
    if let QueryCommand::Pipeline(a) = &mut command {
        if let (Some(file), true) = (&a.diff, a.read.project.is_empty()) {
            a.read.project = super::pipeline::project_of(file)?;
        }
    }
    if let Some(read) = command.read_args().filter(|r| r.project.is_empty()) {
        match sole_project(&mut svc, read.min_position).await {
            Ok(project) => command.set_project(project),
            // The history of every project the caller may view.
            Err(Ok(_)) if command.spans_projects() => {}
            Err(Ok(problem)) => anyhow::bail!(problem),
            Err(Err(status)) => return Ok(refused(output, &status)),
        }
    }
    let result = match command {
        QueryCommand::Projects(a) => projects::run(&mut svc, a, output).await,
        QueryCommand::Status(a) => stages::status(&mut svc, a, output).await,
        QueryCommand::History(a) => history::run(&mut svc, a, output).await,
        QueryCommand::Freight(a) => freight::run(&mut svc, a, output).await,
        QueryCommand::Promotions(a) => promotions::run(&mut svc, a, output).await,
        QueryCommand::Pending(a) => promotions::pending(&mut svc, a, output).await,
        QueryCommand::Watch(a) => watch::run(&mut svc, a, output).await,
        QueryCommand::At(a) => super::at::run(&mut svc, a, output).await,
        QueryCommand::Pipeline(a) => super::pipeline::run(&mut svc, a, output).await,
    };
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(status) => refused(output, &project_meant(&mut svc, status).await),
    })
}

/// A refusal for a project that does not exist, with the one meant when a
/// project the caller may view is named like it (`-p shp`: did you mean
/// "shop"?); any other status as it is. The server does not suggest
/// projects itself: it would name projects the caller may not view.
async fn project_meant(svc: &mut super::rpc::Queries, status: tonic::Status) -> tonic::Status {
    let given = match status.message().strip_prefix("no project ") {
        Some(quoted) if status.code() == tonic::Code::NotFound => quoted.trim_matches('"'),
        _ => return status,
    };
    let given = given.to_string();
    with_project_hint(svc, status, &given).await
}

/// `status` with "(did you mean ...?)" added: the project closest to
/// `given` among those the caller may view (`ListProjects` keeps to them),
/// when there is one; else `status` as it is.
pub async fn with_project_hint(
    svc: &mut super::rpc::Queries,
    status: tonic::Status,
    given: &str,
) -> tonic::Status {
    let Ok(reply) = svc
        .list_projects(waybill_proto::v1::ListProjectsRequest::default())
        .await
    else {
        return status;
    };
    let names = reply.get_ref().projects.iter().map(|p| p.project.as_str());
    let like = waybill_ledger::name::did_you_mean(given, names);
    if like.is_empty() {
        return status;
    }
    tonic::Status::with_details_and_metadata(
        status.code(),
        format!("{}{like}", status.message()),
        status.details().to_vec().into(),
        status.metadata().clone(),
    )
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use tonic::Status;

    use super::*;
    use crate::client::queries::rpc::{exit_code, REFUSED, UNREACHABLE};
    use crate::client::queries::testing::{Flaky, Server};
    use crate::client::Output;

    /// The verbs as `main` wires them: flattened next to the client flags.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: QueryCommand,
    }

    fn parse(args: &[&str]) -> Result<QueryCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("waybill").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn history_flags() {
        let c = parse(&[
            "history",
            "-p",
            "shop",
            "--type",
            "PromotionRequested",
            "--since",
            "2024-05-01T14:00:00+02:00",
            "--min-position",
            "7",
        ])
        .expect("valid");
        let QueryCommand::History(a) = c else {
            panic!("not history: {c:?}")
        };
        assert_eq!(a.limit, 50);
        assert_eq!(a.read.min_position, 7);
        assert_eq!(a.event_type.as_deref(), Some("PromotionRequested"));
        assert_eq!(a.since.as_deref(), Some("2024-05-01T12:00:00Z"));
        assert!(parse(&["history", "-p", "shop", "--since", "yesterday"]).is_err());
    }

    #[test]
    fn one_or_many() {
        assert!(parse(&["freight", "-p", "shop", "v1.2", "--warehouse", "w"]).is_err());
        assert!(parse(&["promotions", "-p", "shop", "prm-1", "--all"]).is_err());
        let c = parse(&["promotions", "-p", "shop", "--status", "failed", "--all"]).expect("valid");
        let QueryCommand::Promotions(a) = c else {
            panic!("not promotions: {c:?}")
        };
        assert_eq!(a.status.as_deref(), Some("Failed"));
        assert!(a.page.all);
    }

    #[test]
    fn at_takes_a_position_or_a_time() {
        let c = parse(&["at", "-p", "shop", "1200"]).expect("valid");
        let QueryCommand::At(a) = c else {
            panic!("not at: {c:?}")
        };
        assert_eq!(a.at, AtPoint::Position(1200));
        assert!(parse(&["at", "-p", "shop", "noon"]).is_err());
    }

    #[tokio::test]
    async fn a_refusal_exits_1() {
        let server = Server::start(Flaky::default()).await;
        let command = parse(&["status", "-p", "shop"]).expect("valid");
        let code = run(&server.args, command)
            .await
            .expect("the server answers");
        assert_eq!(code, ExitCode::from(REFUSED));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error() {
        // A port that was free a moment ago and is closed now.
        let addr = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            l.local_addr().expect("bound")
        };
        let args = ClientArgs {
            server: format!("http://{addr}"),
            query_server: None,
            token: None,
            token_file: None,
            output: Output::Text,
            ca: None,
            cert: None,
            key: None,
        };
        let command = parse(&["status", "-p", "shop"]).expect("valid");
        let err = run(&args, command).await.expect_err("nobody listens");
        assert!(err.to_string().contains("cannot reach"), "{err}");
    }

    #[test]
    fn unavailable_exits_2_and_refusals_1() {
        assert_eq!(
            exit_code(&Status::unavailable("down")),
            ExitCode::from(UNREACHABLE)
        );
        assert_eq!(exit_code(&Status::not_found("no")), ExitCode::from(REFUSED));
    }
}
