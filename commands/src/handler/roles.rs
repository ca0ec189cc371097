//! Which role each command needs, and where.

use waybill_ledger::domain::ProjectState;

use crate::auth::Role;
use crate::command::Command;

/// The role `command` needs and the stage it applies to (`None`: project-wide).
pub fn required_role<'a>(state: &'a ProjectState, command: &'a Command) -> (Role, Option<&'a str>) {
    let stage = command.stage().or_else(|| {
        command
            .promotion()
            .and_then(|id| state.promotions.get(id))
            .map(|p| p.stage.as_str())
    });
    let role = match command {
        Command::ApplyPipeline { .. } => Role::Admin,
        Command::RecordDiscovery { .. }
        | Command::RecordVerification { .. }
        | Command::RequestPromotion { .. }
        | Command::Rollback { .. }
        | Command::AbortPromotion { .. }
        | Command::ReportPromotionResult { .. } => Role::Promoter,
        Command::ApprovePromotion { .. } | Command::RejectPromotion { .. } => Role::Approver,
        Command::ApproveFreight { .. } => Role::Bypass,
    };
    (role, stage)
}
