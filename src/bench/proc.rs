//! Process helpers of the benchmarks: memory figures from `/proc/<pid>/status`, stopping a
//! child politely, pinning to one CPU.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

/// Memory figures of a process, in bytes.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    /// Peak resident set size (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// Current resident set size (`VmRSS`).
    pub rss_bytes: u64,
}

/// `VmHWM` and `VmRSS` of process `pid` (`None`: this process).
pub fn memory(pid: Option<u32>) -> anyhow::Result<Memory> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {path} (Linux only)"))?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line
            .trim_start_matches(name)
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    match (field("VmHWM:"), field("VmRSS:")) {
        (Some(peak_rss_bytes), Some(rss_bytes)) => Ok(Memory {
            peak_rss_bytes,
            rss_bytes,
        }),
        _ => bail!("{path} has no VmHWM/VmRSS"),
    }
}

/// Sends SIGTERM to `child` and waits up to `grace` for it to exit, then kills it.
pub async fn stop(child: &mut tokio::process::Child, grace: Duration) -> anyhow::Result<()> {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok())
        && let Some(pid) = rustix::process::Pid::from_raw(pid)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => {
            status.context("cannot wait for the child process")?;
        }
        Err(_) => {
            tracing::warn!(?grace, "child did not stop after SIGTERM; killing it");
            child
                .kill()
                .await
                .context("cannot kill the child process")?;
        }
    }
    Ok(())
}

/// Pins the calling thread (and the threads it creates afterwards) to one CPU: the first one
/// this process may run on. Returns the CPU number.
pub fn pin_to_one_cpu() -> anyhow::Result<usize> {
    let allowed =
        rustix::thread::sched_getaffinity(None).context("cannot read the CPU affinity")?;
    let cpu = (0..rustix::thread::CpuSet::MAX_CPU)
        .find(|&c| allowed.is_set(c))
        .context("no CPU in the affinity set")?;
    let mut one = rustix::thread::CpuSet::new();
    one.set(cpu);
    rustix::thread::sched_setaffinity(None, &one).context("cannot set the CPU affinity")?;
    Ok(cpu)
}

/// Size of a directory tree in bytes (files only).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// `bytes` as MB with one decimal (10^6 bytes).
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
