//! The server of `bench commands`: `serve`'s services in this process, on a
//! loopback port, so that the run measures them and not a child's start-up.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use waybill_commands::auth::Authenticator;
use waybill_commands::clock::Clock;

use crate::open::OpenLog;
use crate::serve::{serve, Services};

/// A `serve` in this process on a loopback port.
pub(super) struct Server {
    pub(super) channel: Channel,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<Option<String>>>,
}

impl Server {
    /// Serves the commands role, and the queries role with `read_side`,
    /// keeping the command state store in `store_dir` as `serve` does.
    pub(super) async fn start(
        log: &OpenLog,
        auth: &Arc<Authenticator>,
        read_side: Option<crate::serve::ReadSide>,
        store_dir: &std::path::Path,
    ) -> anyhow::Result<Server> {
        let command_store = waybill_commands::handler::ColdStore::open(store_dir)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            Services {
                log: log.clone(),
                auth: auth.clone(),
                clock: Clock::System,
                command_cache_records: waybill_commands::handler::DEFAULT_CACHE_RECORDS,
                command_store: Some(command_store),
                commands: true,
                reactors: false,
                read_side,
                tls: None,
                rate_limit: crate::rate_limit::RateLimit::new(u32::MAX),
                backup: None,
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        Ok(Server {
            channel,
            stop,
            task,
        })
    }

    pub(super) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        match self.task.await.context("server task")?? {
            Some(why) => anyhow::bail!("{why}"),
            None => Ok(()),
        }
    }
}
