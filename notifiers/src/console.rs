//! The console channel: one line per notification on stdout (`TITLE | BODY`, the body squeezed
//! onto one line). Used by the demo and for local testing; the writer is injectable so tests can
//! capture the output.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};

use herald_core::{DeliveryOutcome, Notification};
use serde::Deserialize;

use crate::channel::{BoxFuture, Channel, ChannelKind};

/// `type: console`. No options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {}

/// A shareable output for the console channel.
pub type SharedWriter = Arc<Mutex<dyn Write + Send>>;

/// Prints notifications, one line each.
pub struct ConsoleChannel {
    name: String,
    out: SharedWriter,
}

impl fmt::Debug for ConsoleChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleChannel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ConsoleChannel {
    /// A console channel writing to stdout.
    pub fn new(name: &str, _cfg: &ConsoleConfig) -> Self {
        Self::with_writer(name, Arc::new(Mutex::new(std::io::stdout())))
    }

    /// A console channel writing to `out` (tests pass a buffer).
    pub fn with_writer(name: &str, out: SharedWriter) -> Self {
        Self {
            name: name.to_string(),
            out,
        }
    }
}

/// `TITLE | BODY` with every run of whitespace (newlines included) in either part squeezed to
/// one space.
pub fn format_line(n: &Notification) -> String {
    let title = squeeze(&n.message.title);
    let body = squeeze(&n.message.body);
    if body.is_empty() {
        title
    } else {
        format!("{title} | {body}")
    }
}

fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Channel for ConsoleChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Console
    }

    fn template_kind(&self) -> &'static str {
        "console"
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        let line = format_line(n);
        Box::pin(async move {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            match writeln!(out, "{line}").and_then(|()| out.flush()) {
                Ok(()) => DeliveryOutcome::Delivered { status: None },
                Err(e) => {
                    tracing::warn!(channel = %self.name, error = %e, "console write failed");
                    DeliveryOutcome::Failed {
                        error: format!("cannot write to the console: {e}"),
                        retry_after_secs: None,
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::notification;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn writes_one_line_per_notification() {
        let buf = Buf::default();
        let ch = ConsoleChannel::with_writer("ops-console", Arc::new(Mutex::new(buf.clone())));
        let mut n = notification("ops-console");
        n.message.title = "[CRITICAL] NodeNotReady".into();
        n.message.body = "node node-b\n  is NotReady\n".into();
        assert_eq!(
            ch.send(&n).await,
            DeliveryOutcome::Delivered { status: None }
        );
        n.message.body = String::new();
        ch.send(&n).await;
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            out,
            "[CRITICAL] NodeNotReady | node node-b is NotReady\n[CRITICAL] NodeNotReady\n"
        );
        assert_eq!(ch.kind(), ChannelKind::Console);
        assert_eq!(ch.template_kind(), "console");
    }
}
