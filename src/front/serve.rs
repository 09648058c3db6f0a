//! `lifeboat serve`, wired in one place: the notifiers of the configured platforms, the
//! scheduler and its alert channels, the router, the outgoing chat connections (Slack
//! Socket Mode, the Discord Gateway); then serving until a signal, and a graceful
//! shutdown that lets chat jobs finish or cancels them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::{DiscordMode, SlackMode};
use crate::error::Error;
use crate::front::chat::Chat;
use crate::front::discord::gateway::Gateway;
use crate::front::hooks::Hooks;
use crate::front::slack::socket::SocketMode;
use crate::schedule::{AlertSinks, Scheduler};

/// `lifeboat serve`: checkpoint the state in the background, listen on `[server] listen`,
/// and serve until SIGTERM or SIGINT.
pub fn run(app: App) -> Result<i32, Error> {
    // Before anything opens files: HTTP clients, the state and the stores share the limit.
    crate::front::listener::raise_file_limit();
    app.db
        .checkpoint_in_background(&app.config.server.state, Duration::from_secs(5))?;
    // A state damaged before start is reported at once (health, the chat alert).
    crate::db::damage::check(&app.config.server.state, Duration::ZERO);
    // Before listening: once /healthz answers, what crashed backups left is gone.
    crate::actions::leftovers::clean_at_start(&app);
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| Error::io("starting the runtime", e))?;
    runtime.block_on(async move {
        // Handlers first, so a SIGTERM right after start is a clean stop, not a kill.
        let stop = shutdown_signal();
        let listen = app.config.server.listen.clone();
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| Error::Failed(format!("cannot listen on {listen}: {e}")))?;
        tracing::info!(
            "lifeboat {} listening on http://{} (config {})",
            env!("CARGO_PKG_VERSION"),
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or(listen),
            app.config.source
        );
        let executor = app.executor.clone();
        serve(app, listener, async move {
            stop.await;
            tracing::info!(
                "shutting down: cancelling {} running jobs",
                executor.running_count()
            );
            executor.cancel_all();
        })
        .await
        .map_err(|e| Error::io("serving HTTP", e))?;
        tracing::info!("stopped");
        Ok(0)
    })
}

/// Resolves at SIGTERM or SIGINT; the handlers are in place once this returns.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}

/// Everything `serve` runs: the router, the chat state, and the scheduler.
pub struct Server {
    pub router: Router,
    pub chat: Chat,
    pub scheduler: Scheduler,
    /// Slack Socket Mode and the Discord Gateway, where configured.
    pub connections: Connections,
    /// The alert channels without the outbox (which keeps its queue in the state), for
    /// the one alert that the state itself is damaged.
    pub alarm_sinks: AlertSinks,
}

/// Build the chat state (notifiers for the configured platforms), the scheduler with its
/// alert channels, and the router.
pub fn build(app: App) -> Result<Server, String> {
    let slack = match &app.config.slack {
        Some(cfg) => Some(crate::front::slack::SlackApi::connect(cfg)?),
        None => None,
    };
    let discord = app
        .config
        .discord
        .as_ref()
        .map(crate::front::discord::DiscordApi::connect);
    let mut sinks: AlertSinks = Vec::new();
    if let (Some(n), Some(c)) = (
        &slack,
        app.config
            .slack
            .as_ref()
            .and_then(|s| s.alert_channel.clone()),
    ) {
        sinks.push((n.clone(), c));
    }
    if let (Some(n), Some(c)) = (
        &discord,
        app.config
            .discord
            .as_ref()
            .and_then(|d| d.alert_channel.clone()),
    ) {
        sinks.push((n.clone(), c));
    }
    let alarm_sinks = sinks.clone();
    let sinks: AlertSinks = sinks
        .into_iter()
        .map(|(n, c)| (crate::front::chat::outbox::for_alerts(&app, n), c))
        .collect();
    let scheduler = Scheduler::new(app.clone(), sinks.clone());
    let chat = Chat::new(app.clone(), slack, discord).with_job_ended(scheduler.waker());
    let hooks = Hooks {
        app: app.clone(),
        wake: scheduler.target_waker(),
        sinks: Arc::new(sinks),
    };
    let router = crate::front::http::router(&app, &chat, hooks)?;
    Ok(Server {
        router,
        connections: Connections::new(&chat),
        chat,
        scheduler,
        alarm_sinks,
    })
}

/// How long running chat jobs get to finish after a shutdown signal; then they are
/// cancelled (their partial output discarded) and waited for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serve until `shutdown` resolves, then stop accepting, let requests in flight end, and
/// finish or cancel background jobs.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Server {
        router,
        chat,
        scheduler,
        connections,
        alarm_sinks,
    } = build(app.clone()).map_err(std::io::Error::other)?;
    if let (Some(token), Ok(addr)) = (
        crate::front::web::generated_token(&app).map_err(std::io::Error::other)?,
        listener.local_addr(),
    ) {
        tracing::info!(
            "status page: {}",
            crate::front::web::link::start_url(addr, &token)
        );
    }
    let alarm = tokio::spawn(crate::front::state_alarm::watch(app.clone(), alarm_sinks));
    // The heartbeat pings only while the scheduler's loop turns (a wedged one stops it).
    let heartbeat = app.config.server.heartbeat.clone().map(|h| {
        let state = app.config.server.state.clone();
        tokio::spawn(crate::monitor::heartbeat::run(h, state, scheduler.alive()))
    });
    let scheduler = tokio::spawn(scheduler.run());
    let replicators = crate::replicate::start_all(&app);
    let connections = connections.start().await;
    let sweeper = {
        let chat = chat.clone();
        tokio::spawn(async move {
            loop {
                chat.expire_requests().await;
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
        })
    };
    let limits = crate::front::listener::Limits::for_this_process();
    tracing::debug!("HTTP limits: {limits:?}");
    crate::front::listener::serve(listener, router, limits, shutdown, SHUTDOWN_GRACE).await?;
    sweeper.abort();
    alarm.abort();
    if let Some(h) = heartbeat {
        h.abort();
    }
    scheduler.abort();
    let _ = tokio::task::spawn_blocking(move || replicators.stop()).await;
    connections.stop().await;
    chat.stop();
    chat.tasks().close();
    if tokio::time::timeout(SHUTDOWN_GRACE, chat.tasks().wait())
        .await
        .is_err()
    {
        tracing::info!("cancelling {} running jobs", app.executor.running_count());
    }
    // Scheduled jobs are not tracked as chat tasks: cancel whatever still runs and give
    // it a moment to discard its partial output and record the cancellation.
    app.executor.cancel_all();
    chat.tasks().wait().await;
    for _ in 0..100 {
        if app.executor.running_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Connections to open (none when every platform uses HTTP).
pub struct Connections {
    slack: Option<SocketMode>,
    discord: Option<Gateway>,
    chat: Chat,
}

/// Connections being kept open.
pub struct Running {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Connections {
    pub fn new(chat: &Chat) -> Connections {
        let config = chat.app.config.clone();
        let slack = config
            .slack
            .as_ref()
            .filter(|s| s.mode == SlackMode::Socket)
            .and_then(|s| SocketMode::new(chat.clone(), s));
        let discord = config
            .discord
            .as_ref()
            .filter(|d| d.mode == DiscordMode::Gateway)
            .map(|d| Gateway::new(chat.clone(), d));
        Connections {
            slack,
            discord,
            chat: chat.clone(),
        }
    }

    pub async fn start(self) -> Running {
        let mut kept = Vec::new();
        self.slack.is_some().then(|| kept.push("slack"));
        self.discord.is_some().then(|| kept.push("discord"));
        // A platform switched back to HTTP keeps no connection state around.
        let db = self.chat.app.db.clone();
        let forget = tokio::task::spawn_blocking(move || db.chat_links_keep(&kept)).await;
        if let Ok(Err(e)) = forget {
            tracing::warn!("clearing old chat connection states: {e}");
        }
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        if let Some(s) = self.slack {
            tasks.push(tokio::spawn(s.run(stop.clone())));
        }
        if let Some(d) = self.discord {
            tasks.push(tokio::spawn(d.run(stop.clone())));
        }
        Running { stop, tasks }
    }
}

impl Running {
    /// Close the connections (envelopes in flight are still acknowledged) and record them
    /// as stopped.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(8), task).await;
        }
    }
}
