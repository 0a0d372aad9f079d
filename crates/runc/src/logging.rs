//! runc-style logging to `--log`: logrus text or JSON lines that containerd parses.

use std::io::Write;
use std::path::PathBuf;

use crate::args::LogFormat;

/// Where and how to log.
#[derive(Debug)]
pub struct Logger {
    path: Option<PathBuf>,
    format: LogFormat,
}

impl Logger {
    /// A logger writing to `path` (nothing is logged without one; errors still go to stderr).
    pub fn new(path: Option<PathBuf>, format: LogFormat) -> Logger {
        Logger { path, format }
    }

    /// Appends one error record.
    pub fn error(&self, msg: &str) {
        let Some(path) = &self.path else { return };
        let line = format_line(self.format, "error", msg, &chrono::Utc::now().to_rfc3339());
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// One log line in the chosen format, newline-terminated.
pub fn format_line(format: LogFormat, level: &str, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => format!(
            "{}\n",
            serde_json::json!({"level": level, "msg": msg, "time": time})
        ),
        LogFormat::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_matches_runc() {
        let l = format_line(
            LogFormat::Json,
            "error",
            "boom \"x\"",
            "2024-01-01T00:00:00Z",
        );
        let v: serde_json::Value = serde_json::from_str(l.trim()).expect("json");
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert_eq!(v["time"], "2024-01-01T00:00:00Z");
        let t = format_line(LogFormat::Text, "error", "a b", "T");
        assert_eq!(t, "time=\"T\" level=error msg=\"a b\"\n");
    }
}
