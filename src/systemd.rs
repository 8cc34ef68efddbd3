//! Every `sd_notify` call in one place. Without `NOTIFY_SOCKET` (a terminal,
//! a test) these do nothing.

use sd_notify::NotifyState;

fn notify(state: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(false, state)
    {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// After migrations ran and the listener is bound.
pub fn ready() {
    notify(&[NotifyState::Ready]);
}

/// When draining begins.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}
