//! Domain event payloads: one struct per fact of DESIGN §1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of artifact a freight item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// A container image (name = repository, version = tag, digest = sha256:...).
    Image,
    /// A git commit (name = URL, version = branch or tag, digest = commit).
    Git,
    /// A Helm chart (name = chart, version = chart version).
    Chart,
}

impl ArtifactKind {
    /// Lowercase name: `image`, `git`, `chart`.
    pub fn name(self) -> &'static str {
        match self {
            ArtifactKind::Image => "image",
            ArtifactKind::Git => "git",
            ArtifactKind::Chart => "chart",
        }
    }
}

/// One versioned artifact inside a freight.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Artifact {
    pub kind: ArtifactKind,
    pub name: String,
    pub version: String,
    pub digest: String,
}

/// A pipeline definition and its policy were applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineConfigured {
    /// Canonical JSON of the whole definition.
    pub definition_json: String,
    pub source_uri: String,
    pub source_revision: String,
    pub source_digest: String,
}

/// A warehouse produced (or CI pushed) a freight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreightDiscovered {
    pub freight_id: String,
    pub warehouse: String,
    pub artifacts: Vec<Artifact>,
    pub alias: String,
}

/// A check reported an outcome for a freight in a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationRecorded {
    pub freight_id: String,
    pub stage: String,
    pub check: String,
    pub passed: bool,
    pub metrics: BTreeMap<String, f64>,
    pub evidence_url: String,
    pub details: String,
}

/// A freight was approved directly for a stage (an emergency bypass when `bypass`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreightApproved {
    pub freight_id: String,
    pub stage: String,
    pub reason: String,
    pub ticket: String,
    pub bypass: bool,
}

/// Someone asked to move a freight into a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionRequested {
    pub promotion_id: String,
    pub stage: String,
    pub freight_id: String,
    pub ticket: String,
    pub reason: String,
}

/// An approver approved a promotion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionApproved {
    pub promotion_id: String,
    pub comment: String,
}

/// An approver rejected a promotion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionRejected {
    pub promotion_id: String,
    pub reason: String,
}

/// The executor started a promotion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionStarted {
    pub promotion_id: String,
    pub executor: String,
}

/// A promotion completed: the stage now runs the freight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionSucceeded {
    pub promotion_id: String,
    pub details: String,
}

/// A promotion failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionFailed {
    pub promotion_id: String,
    pub reason: String,
    pub details: String,
}

impl PromotionFailed {
    /// Why it failed, with what the executor said (`reason: details`).
    pub fn account(&self) -> String {
        if self.details.is_empty() {
            self.reason.clone()
        } else {
            format!("{}: {}", self.reason, self.details)
        }
    }
}

/// A promotion was aborted before completing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionAborted {
    pub promotion_id: String,
    pub reason: String,
}

/// A signed transparency checkpoint over the whole log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSigned {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub signed_note: String,
}
