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

/// After migrations ran and the listener is bound, and after a reload.
pub fn ready() {
    notify(&[NotifyState::Ready]);
}

/// While a reload is being applied (`Type=notify-reload` wants the timestamp).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(stamp) => notify(&[NotifyState::Reloading, stamp]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// When draining begins.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// From the scheduler loop after each completed pass.
pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}
