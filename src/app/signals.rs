//! Signals: SIGTERM/SIGINT start the drain; SIGXFSZ is survived.

/// Keeps the process alive past a file-size limit (`RLIMIT_FSIZE`). By default SIGXFSZ
/// kills the process, with nothing logged; caught, it lets the write fail with EFBIG,
/// which the store answers as a failed write (and readiness NOT_SERVING) while reads go
/// on. Catching it through tokio needs no `unsafe`; each signal is logged.
pub(super) fn survive_file_size_limit() {
    use tokio::signal::unix::{SignalKind, signal};
    let kind = SignalKind::from_raw(nix::sys::signal::Signal::SIGXFSZ as i32);
    match signal(kind) {
        Ok(mut signals) => {
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    tracing::error!(
                        "a write went past the process's file-size limit (SIGXFSZ); it \
                         failed, and the store reports it"
                    );
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch SIGXFSZ; a file-size limit will stop the process")
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT will stop the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
